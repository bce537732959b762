"""API tokens: create (the secret is returned once), authenticate, revoke.

A token is ``prl_`` + 32 random bytes (URL-safe base64). The database keeps its
SHA-256 digest, which is enough for a secret of that entropy: a stolen table does
not give usable tokens, and lookup stays one indexed query.
"""

import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone

from .models import ApiToken

TOKEN_PREFIX = "prl_"  # noqa: S105 (a label, not a secret)
# last_used_at is refreshed at most this often, so each request does not write.
LAST_USED_PRECISION = timedelta(seconds=60)


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
    token = ApiToken.objects.active().select_related("user").filter(digest=_digest(secret)).first()
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
