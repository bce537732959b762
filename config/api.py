"""The integration API (PRODUCT.md §9): one NinjaAPI, bearer-token auth, and the
error handlers that give every refusal one shape: ``{"error": code, "detail": sentence}``.

Routers live in their apps and know nothing of the auth; they are attached here.
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer

from connectors.api import router as connectors_router
from connectors.tokens import token_authenticate
from conversations.api import router as conversations_router
from conversations.exceptions import ParleyError
from flows.api import router as flows_router


class BearerToken(HttpBearer):
    """``Authorization: Bearer <token>``; tokens are issued in the admin or with
    ``manage.py create_api_token``. ``request.auth`` is the token's user."""

    def authenticate(self, request, token):
        return token_authenticate(token)


api = NinjaAPI(
    title="Parley API",
    version="1",
    urls_namespace="api",
    auth=BearerToken(),
    # The docs and the schema are for logged-in users (PRODUCT.md §10: anonymous
    # users see the login page only); the endpoints themselves take bearer tokens.
    docs_decorator=login_required,
    description=(
        "The integration API of Parley. Every call needs `Authorization: Bearer <token>` "
        "(a token from the admin or `manage.py create_api_token <username>`). Errors are "
        '`{"error": "<code>", "detail": "<sentence>"}`: 401 `unauthorized`, 404 `not_found`, '
        "409 refusals of the status rules (`illegal_transition`, `tags_locked`, "
        "`conversation_ongoing`, `not_archivable`, `contact_exists`, `flow_inactive`), "
        "422 `invalid_input`, `invalid_request` or `invalid_cursor`.\n\n"
        "Outbound messages to a contact on a *webhook* channel (set up in the admin) are "
        "POSTed to the channel's URL as "
        '`{"event": "message.outbound", "message": {...}, "conversation": {...}, '
        '"contact": {...}}`, retried with backoff; with a channel secret each POST carries '
        "`X-Parley-Signature: sha256=<HMAC-SHA256 of the body>`. "
        "`GET /messages/{id}/delivery` tells how one went."
    ),
)


def _error(request, status: int, code: str, detail: str):
    return api.create_response(request, {"error": code, "detail": detail}, status=status)


@api.exception_handler(ParleyError)
def parley_error(request, exc: ParleyError):
    return _error(request, exc.http_status, exc.code, exc.detail)


@api.exception_handler(ValidationError)
def validation_error(request, exc: ValidationError):
    parts = []
    for error in exc.errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "payload"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", ""))
    detail = "; ".join(p for p in parts if p) or "The request is not valid."
    return _error(request, 422, "invalid_request", detail)


@api.exception_handler(AuthenticationError)
def authentication_error(request, exc: AuthenticationError):
    response = _error(
        request,
        401,
        "unauthorized",
        "A valid API token is required: send 'Authorization: Bearer <token>'.",
    )
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(HttpError)
def http_error(request, exc: HttpError):
    if exc.status_code == 400:  # ninja could not parse the body as JSON
        return _error(request, 422, "invalid_request", "The request body is not valid JSON.")
    return _error(request, exc.status_code, "error", str(exc))


@api.exception_handler(Http404)
def not_found(request, exc: Http404):
    return _error(request, 404, "not_found", str(exc) or "Not found.")


@api.exception_handler(ObjectDoesNotExist)
def object_not_found(request, exc: ObjectDoesNotExist):
    return _error(request, 404, "not_found", "Not found.")


api.add_router("/", conversations_router)
api.add_router("/", flows_router)
api.add_router("/", connectors_router)
