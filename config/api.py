"""The integration API (PRODUCT.md §9): one NinjaAPI, bearer-token auth, and the
error handlers that give every refusal one shape: ``{"error": code, "detail": sentence}``.

Routers live in their apps and know nothing of the auth; they are attached here.
"""

import json
import logging

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.http import Http404, JsonResponse
from ninja import NinjaAPI, Router
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
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


class UnsupportedMediaType(ValueError):
    pass


class JsonParser(Parser):
    """Bodies are JSON: a body sent as a form or as text is refused (415), not
    guessed at. ``application/json`` and any ``+json`` type are accepted."""

    def parse_body(self, request):
        media_type = request.content_type or ""
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise UnsupportedMediaType(media_type)
        return json.loads(request.body)


api = NinjaAPI(
    parser=JsonParser(),
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
        "422 `invalid_input`, `invalid_request` or `invalid_cursor`; a body that is not JSON "
        "is 415 `unsupported_media_type`, one over the upload limit 413 `payload_too_large`, "
        "an unknown path 404 `not_found` and a wrong method 405 `method_not_allowed`.\n\n"
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
    if exc.status_code == 400:  # ninja could not parse the body (JsonParser)
        if isinstance(exc.__cause__, UnsupportedMediaType):
            return _error(
                request,
                415,
                "unsupported_media_type",
                "The request body must be JSON, sent with 'Content-Type: application/json'.",
            )
        return _error(request, 422, "invalid_request", "The request body is not valid JSON.")
    return _error(request, exc.status_code, error_code(exc.status_code), str(exc))


@api.exception_handler(RequestDataTooBig)
def payload_too_large(request, exc: RequestDataTooBig):
    return _error(request, 413, "payload_too_large", PAYLOAD_TOO_LARGE)


@api.exception_handler(Http404)
def not_found(request, exc: Http404):
    return _error(request, 404, "not_found", str(exc) or "Not found.")


@api.exception_handler(ObjectDoesNotExist)
def object_not_found(request, exc: ObjectDoesNotExist):
    return _error(request, 404, "not_found", "Not found.")


api.add_router("/", conversations_router)
api.add_router("/", flows_router)
api.add_router("/", connectors_router)


# --- answers that do not come from an endpoint --------------------------------------

PAYLOAD_TOO_LARGE = "The request body is larger than the server accepts."
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "server_error",
}
ERROR_DETAILS = {
    400: "The request is not valid.",
    403: "This request is not allowed.",
    404: "There is no such API endpoint.",
    405: "This endpoint does not accept that method.",
    413: PAYLOAD_TOO_LARGE,
    500: "The server failed to answer; the error is logged. Please try again.",
}


def error_code(status: int) -> str:
    return ERROR_CODES.get(status, "server_error" if status >= 500 else "error")


# Registered last, so every real endpoint matches before it: an unknown path under
# /api/v1/ is a JSON 404, with or without a token.
fallback_router = Router()


@fallback_router.api_operation(
    ["GET", "POST", "PUT", "PATCH", "DELETE"], "/{path:rest}", auth=None, include_in_schema=False
)
def unknown_endpoint(request, rest: str):
    return _error(request, 404, "not_found", ERROR_DETAILS[404])


api.add_router("/", fallback_router)

logger = logging.getLogger(__name__)


class ApiErrorShapeMiddleware:
    """Every error the API answers is ``{"error", "detail"}`` JSON, including the ones
    Django or ninja make outside the endpoints' handlers: a wrong method (405), a body
    over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` read before the endpoint (400 → 413), an
    unexpected exception (500, logged by Django as usual)."""

    prefix = "/api/v1/"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path.startswith(self.prefix)
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        return self.shaped(response)

    def process_exception(self, request, exception):
        if isinstance(exception, RequestDataTooBig) and request.path.startswith(self.prefix):
            return JsonResponse(
                {"error": "payload_too_large", "detail": PAYLOAD_TOO_LARGE}, status=413
            )
        return None

    @staticmethod
    def shaped(response):
        status = response.status_code
        detail = ERROR_DETAILS.get(status) or f"{response.reason_phrase}."
        shaped = JsonResponse({"error": error_code(status), "detail": detail}, status=status)
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                shaped[header] = response[header]
        return shaped
