"""The integration API (PRODUCT.md §9): one NinjaAPI; each app adds its router."""

from ninja import NinjaAPI

api = NinjaAPI(title="Parley API", version="1", urls_namespace="api")
