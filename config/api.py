"""The integration API (PRODUCT.md §9): one NinjaAPI, bearer-token auth, and the
error handlers that give every refusal one shape: ``{"error": code, "detail": sentence}``.

Routers live in their apps and know nothing of the auth; they are attached here.
"""

import json
import logging
from types import SimpleNamespace

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.http import Http404, JsonResponse, QueryDict
from ninja import NinjaAPI, Query, Router
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from ninja.security import HttpBearer

from connectors.api import router as connectors_router
from connectors.tokens import token_authenticate
from conversations.api import conversations_for_api
from conversations.api import router as conversations_router
from conversations.exceptions import InvalidInput, ParleyError
from conversations.models import Tag
from conversations.schemas import ConversationFilters, ConversationPageOut, ErrorOut
from flows.api import router as flows_router
from inbox import choices
from inbox import selectors as inbox
from reports.api import router as reports_router


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
        "The POSTs that create something (contacts, inbound messages, replies, notes, flow "
        "starts, broadcasts) take an `Idempotency-Key: <key>` header (1–255 printable ASCII "
        "characters, e.g. a UUID, per token user, kept 24 hours): send a request again with "
        "the same key after a timeout or a broken connection and it is done once, the first "
        "success answered again with `Idempotent-Replayed: true`. The same key with another "
        "body or endpoint is 422 `idempotency_key_reused`; a malformed key 422 "
        "`invalid_idempotency_key`. A refused request is not remembered: it may be sent "
        "again with its key.\n\n"
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


# --- the conversation list: the inbox's own -----------------------------------------
#
# ``GET /conversations`` runs the inbox's selector: its FilterSet (one set of filter
# semantics, the measured search shapes) and its keyset cursor. It is wired here, not
# in conversations/api.py, because the core does not import the inbox.

list_router = Router(tags=["conversations"])
# Filters whose value may simply match nothing: an empty page, not an error.
MATCH_NOTHING = {"tag", "channel", "assignee"}
EMPTY_PAGE = {"items": [], "next_cursor": None}
REPEATABLE = {"status"}


def _inbox_params(filters: ConversationFilters) -> QueryDict | None:
    """The API's parameters as the inbox's query string; None when a tag or an
    assignee names nothing (the page is empty)."""
    params = QueryDict(mutable=True)
    params["view"] = inbox.VIEW_ALL  # the inbox's default view is an agent's; the API lists all
    statuses = [s.strip() for value in filters.status for s in value.split(",") if s.strip()]
    params.setlist("status", statuses)
    params["archived"] = filters.archived
    params["sort"] = filters.sort
    params["limit"] = str(filters.limit)
    if filters.q and filters.q.strip():
        params["q"] = filters.q
    if filters.channel and filters.channel.strip():
        params["channel"] = filters.channel.strip().lower()
    if filters.tag and filters.tag.strip():
        # The inbox offers the tags by their name; the API matches the tag's identity
        # (case, width and Unicode form).
        names = Tag.objects.named(filters.tag.strip()).values_list("name", flat=True)
        name = names.first()
        if name is None:
            return None
        params["tag"] = name
    if filters.assignee in ("me", "none"):
        params["assignee"] = filters.assignee
    elif filters.assignee:
        # The inbox's choices are agent ids; the API names agents by username.
        users = get_user_model().objects.filter(username=filters.assignee, is_active=True)
        pk = users.values_list("pk", flat=True).first()
        if pk is None:
            return None
        params["assignee"] = str(pk)
    if filters.active_from:
        params["active_from"] = filters.active_from.isoformat()
    if filters.active_to:
        params["active_to"] = filters.active_to.isoformat()
    if filters.cursor:
        try:
            inbox.decode_cursor(filters.cursor, sort=filters.sort)
        except inbox.BadCursor:
            raise InvalidInput(
                "The cursor is not valid: pass the next_cursor of a previous page "
                "(of the same sort).",
                code="invalid_cursor",
            ) from None
        params["cursor"] = filters.cursor
    return params


def _matches_nothing(form) -> bool:
    errors = form.errors.as_data()
    return set(errors) <= MATCH_NOTHING and all(
        error.code == "invalid_choice" for field in errors.values() for error in field
    )


@list_router.get(
    "/conversations",
    response={200: ConversationPageOut, 401: ErrorOut, 422: ErrorOut},
    summary="List conversations, most recently active first (cursor-paginated)",
)
def conversation_list(request, filters: Query[ConversationFilters]):
    """The inbox's filters. `status` may be repeated (`?status=new&status=in_progress`)
    or comma-separated; `archived` defaults to `no`, like the inbox. An unknown
    parameter is refused (a misspelt filter would otherwise list everything)."""
    unknown = sorted(set(request.GET) - set(ConversationFilters.model_fields))
    if unknown:
        raise InvalidInput(f"Unknown parameter {unknown[0]!r}.", code="invalid_request")
    repeated = sorted(k for k, v in request.GET.lists() if len(v) > 1 and k not in REPEATABLE)
    if repeated:
        raise InvalidInput(f"{repeated[0]} is given more than once.", code="invalid_request")
    params = _inbox_params(filters)
    if params is None:
        return EMPTY_PAGE
    # The FilterSet reads the agent from ``request.user``; the API's is the token's.
    page = inbox.conversation_list(
        request=SimpleNamespace(user=request.auth), params=params, with_total=False
    )
    if page.errors:
        if _matches_nothing(page.filterset.form):
            return EMPTY_PAGE
        raise InvalidInput(" ".join(page.errors))
    # The inbox shows at least a page of 50; the API may ask for fewer.
    rows = page.rows[: filters.limit]
    next_cursor = page.next_cursor
    if len(page.rows) > len(rows):
        next_cursor = inbox.encode_cursor(page.sort, rows[-1])
    # The inbox reads only what a row shows: the API's items are the whole objects,
    # with the tags of the page's rows from the inbox's memory of the tags.
    whole = conversations_for_api().prefetch_related(None).in_bulk([row.pk for row in rows])
    tags = choices.tags_knowing(ids={pk for row in rows for pk in row.tag_ids}).by_id
    items = []
    for row in rows:
        conversation = whole[row.pk]
        conversation.row_tags = sorted((tags[pk] for pk in row.tag_ids), key=lambda t: t.name)
        items.append(conversation)
    return {"items": items, "next_cursor": next_cursor}


api.add_router("/", list_router)
api.add_router("/", conversations_router)
api.add_router("/", flows_router)
api.add_router("/", connectors_router)
api.add_router("/", reports_router)


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
