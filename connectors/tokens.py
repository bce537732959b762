"""API tokens: create (the secret is returned once), authenticate, revoke.

A token is ``prl_`` + 32 random bytes (URL-safe base64). The database keeps its
SHA-256 digest, which is enough for a secret of that entropy: a stolen table does
not give usable tokens, and lookup stays one indexed query.

Each process remembers a token it accepted, by digest, for ``TOKEN_CACHE_SECONDS``,
so an API client's steady stream of requests costs no query for the token. The
memory is forgotten at once when a token or a user is saved or deleted in this
process (revoking, deactivating); a token revoked through another process is
refused here within ``TOKEN_CACHE_SECONDS``. Unknown or refused tokens are never
remembered: they are looked up every time.
"""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from conversations.memo import Memo

from .models import ApiToken

TOKEN_PREFIX = "prl_"  # noqa: S105 (a label, not a secret)
# last_used_at is refreshed at most this often, so each request does not write.
LAST_USED_PRECISION = timedelta(seconds=60)
# How long a process trusts a token it has accepted (revocation elsewhere is seen
# within this delay; here, at once).
TOKEN_CACHE_SECONDS = 5.0
TOKEN_CACHE_SIZE = 1000

# digest -> [token id, user, last_used_at as last written here]; a list, so that
# recording a use does not extend the time the token is trusted.
accepted = Memo(
    seconds=TOKEN_CACHE_SECONDS,
    watch=[ApiToken, settings.AUTH_USER_MODEL],
    size=TOKEN_CACHE_SIZE,
)


def forget_tokens() -> None:
    accepted.forget()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_fill(token: ApiToken) -> str:
    """Give an unsaved token a fresh secret; returns the secret (shown once)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token.prefix = secret[:12]
    token.digest = _digest(secret)
    return secret


def token_create(*, user, name: str = "") -> tuple[ApiToken, str]:
    """A new token for ``user``: the stored row and the secret (shown once)."""
    token = ApiToken(user=user, name=name[:100])
    secret = token_fill(token)
    token.save()
    return token, secret


def token_authenticate(secret: str):
    """The active user a token belongs to, or None (unknown, revoked, inactive user)."""
    if not secret or len(secret) > 200:
        return None
    digest = _digest(secret)
    held = accepted.get(digest, lambda: _lookup(digest), keep=lambda held: held is not None)
    if held is None:
        return None
    token_id, user, last_used_at = held
    now = timezone.now()
    if last_used_at is None or now - last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token_id).update(last_used_at=now)
        held[2] = now
    return user


def _lookup(digest: str) -> list | None:
    token = ApiToken.objects.active().select_related("user").filter(digest=digest).first()
    return None if token is None else [token.pk, token.user, token.last_used_at]


def token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
