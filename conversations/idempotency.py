"""``Idempotency-Key`` for the API's creating POSTs (issue 17): a client that sends
the same request again with the same key, because a connection broke or a host died
before the answer reached it, gets the first answer back instead of a second message.

Mark an endpoint with :func:`idempotent` (below ``@router.post``). Without the
header nothing changes: the request runs as before, with no extra query. With it:

- The key (1–255 printable ASCII characters) belongs to the token's user: two clients
  may use the same key independently. A bad key is 422 ``invalid_idempotency_key``
  (after the token's 401 and the body's 422, before any work).
- **First request**: the endpoint runs inside one transaction that also writes the
  key's record (key, user, endpoint, a hash of the JSON body, status, response body),
  so the work commits if and only if the record does. One extra statement, an INSERT.
  Only a success (2xx) is recorded: a refusal changed nothing, so sending it again is
  safe and may succeed later (a 5xx is rolled back whole).
- **Again, same endpoint and body**: the first answer, byte for byte, with
  ``Idempotent-Replayed: true``; nothing is stored again. **Different endpoint or
  body**: 422 ``idempotency_key_reused``, nothing changes.
- **At once**: both run, and the second's INSERT of the key waits for the first's
  transaction (the unique index, or before it the row locks of the work itself, e.g.
  the contact of an inbound message). When the first commits, the second finds the
  key taken, rolls its own work back and answers the replay. Never two messages and
  never a "still in progress" error to retry.

The work runs before the key is checked (a replay redoes it, then rolls it back):
the key is checked where the record is written, so the first request pays one
INSERT and no lookup. A replay whose work is refused (the contact exists now, the
conversation was closed since) finds the record after the refusal. Outside effects
(delivery, events) run on commit, so a rolled-back replay sends nothing.

Records live ``KEY_LIFETIME`` (24 h, as Stripe): an older key counts as new again,
whether or not :func:`prune_expired` (the housekeeping task) has deleted it yet.
"""

import functools
import hashlib
import json
from datetime import timedelta

from django.db import connection, transaction
from django.http import HttpResponse
from django.utils import timezone
from ninja.decorators import decorate_view
from ninja.utils import contribute_operation_callback

from . import housekeeping
from .exceptions import ChangedMeanwhile, IdempotencyKeyInvalid, IdempotencyKeyReused
from .locks import retrying_atomic
from .models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_MAX_LENGTH = 255
KEY_LIFETIME = timedelta(hours=24)
_META = "HTTP_IDEMPOTENCY_KEY"

# One statement: the key's record, unless the key is taken by a live record (then
# nothing is returned). A record past its lifetime is taken over in place. A
# concurrent request's uncommitted record makes this wait for its outcome.
_RECORD = """
    INSERT INTO conversations_idempotencyrecord AS r
        (user_id, key, endpoint, request_hash, status, response, created_at)
    VALUES (%(user)s, %(key)s, %(endpoint)s, %(hash)s, %(status)s, %(response)s, %(now)s)
    ON CONFLICT (user_id, key) DO UPDATE
        SET endpoint = EXCLUDED.endpoint, request_hash = EXCLUDED.request_hash,
            status = EXCLUDED.status, response = EXCLUDED.response,
            created_at = EXCLUDED.created_at
        WHERE r.created_at < %(expired_before)s
    RETURNING 1
"""

OPENAPI_PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": KEY_MAX_LENGTH,
        "pattern": "^[ -~]+$",
    },
    "description": (
        "A key of your own (1–255 printable ASCII characters, e.g. a UUID) for this "
        "request: send the same request again with the same key (after a timeout or a "
        "broken connection) and it is done once; the first answer comes back with "
        "`Idempotent-Replayed: true`. Keys belong to the token's user and are kept "
        "24 hours; the same key with another body or endpoint is 422 "
        "`idempotency_key_reused`."
    ),
}


def is_valid_key(value: str) -> bool:
    return 1 <= len(value) <= KEY_MAX_LENGTH and all(" " <= c <= "~" for c in value)


def request_hash(body: bytes) -> str:
    """SHA-256 of the JSON body with its keys sorted and no spaces, so a client that
    re-serialises the same object sends the same request; of the bytes otherwise."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8", "surrogatepass")
    except (ValueError, RecursionError):
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


def _fingerprint(request) -> tuple[str, str]:
    """What a key's request was: its endpoint and the hash of its body."""
    return f"{request.method} {request.path}", request_hash(request.body)


@retrying_atomic
def _run_and_record(run, request, kw, key: str) -> tuple[HttpResponse | None, bool]:
    """Run the endpoint and record its success, in one transaction: (the response,
    recorded) — (None, False) when the key was taken (everything rolled back)."""
    response = run(request, **kw)
    user = getattr(request, "auth", None)
    if response.status_code >= 500:
        transaction.set_rollback(True)  # DEBUG's traceback page: nothing half-done stays
    if not 200 <= response.status_code < 300 or user is None:
        return response, False
    endpoint, body_hash = _fingerprint(request)
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _RECORD,
            {
                "user": user.pk,
                "key": key,
                "endpoint": endpoint,
                "hash": body_hash,
                "status": response.status_code,
                "response": response.content.decode(response.charset),
                "now": now,
                "expired_before": now - KEY_LIFETIME,
            },
        )
        recorded = cursor.fetchone() is not None
    if not recorded:
        transaction.set_rollback(True)
        return None, False
    return response, True


def _remembered(user, key: str) -> IdempotencyRecord | None:
    live = IdempotencyRecord.objects.filter(created_at__gte=timezone.now() - KEY_LIFETIME)
    return live.filter(user=user, key=key).first()


def _replay(api, request, record: IdempotencyRecord) -> HttpResponse:
    endpoint, body_hash = _fingerprint(request)
    if (record.endpoint, record.request_hash) != (endpoint, body_hash):
        used = IdempotencyKeyReused(
            f"This Idempotency-Key was already used for another request ({record.endpoint}"
            f"{' with another body' if record.endpoint == endpoint else ''}); "
            "send a new key with a new request."
        )
        return api.on_exception(request, used)
    renderer = api.renderer
    response = HttpResponse(
        record.response,
        status=record.status,
        content_type=f"{renderer.media_type}; charset={renderer.charset}",
    )
    response[REPLAYED_HEADER] = "true"
    return response


def _replayable(run):
    """Wraps an operation's ``run`` (auth, parsing, the view, the response)."""

    @functools.wraps(run)
    def wrapper(request, **kw):
        key = request.META.get(_META)
        if key is None or not is_valid_key(key):
            # As before; a malformed key is refused by the view, after the token.
            return run(request, **kw)
        api = run.__self__.api
        # Twice at most: a key whose record expired between the INSERT and the
        # lookup is new again.
        for _ in range(2):
            response, recorded = _run_and_record(run, request, kw, key)
            user = getattr(request, "auth", None)
            if recorded or user is None:
                return response
            record = _remembered(user, key)
            if record is not None:
                return _replay(api, request, record)
            if response is not None:  # a refusal, and no earlier request with the key
                return response
        # Taken, then gone, twice in a row: nothing was done; the client may retry.
        return api.on_exception(request, ChangedMeanwhile())

    return wrapper


def _refusing_malformed_keys(view_func):
    """Wraps the view ninja calls once the token and the body are checked."""

    @functools.wraps(view_func)
    def view(request, **values):
        key = request.META.get(_META)
        if key is not None and not is_valid_key(key):
            raise IdempotencyKeyInvalid()
        return view_func(request, **values)

    return view


def _prepare(operation) -> None:
    operation.view_func = _refusing_malformed_keys(operation.view_func)
    extra = dict(operation.openapi_extra or {})
    extra["parameters"] = [*extra.get("parameters", []), OPENAPI_PARAMETER]
    operation.openapi_extra = extra


def idempotent(view_func):
    """Accept an ``Idempotency-Key`` header on this endpoint (put it below
    ``@router.post``)."""
    contribute_operation_callback(view_func, _prepare)
    return decorate_view(_replayable)(view_func)


def prune_expired(*, batch: int = housekeeping.PRUNE_BATCH) -> int:
    """Delete the records past ``KEY_LIFETIME`` (housekeeping), along the
    ``created_at`` index; a record being taken over by a new request (locked) is left
    to the next run. Returns how many."""
    cutoff = timezone.now() - KEY_LIFETIME
    return housekeeping.delete_older(
        IdempotencyRecord._meta.db_table, "created_at", cutoff, batch=batch
    )
