"""Channel secrets: stored as ``env:NAME`` (read from the environment when used) or
encrypted with Fernet, never in clear. The key is derived from ``PARLEY_SECRETS_KEY``
when set, otherwise from ``SECRET_KEY`` (changing it makes stored secrets unreadable:
enter them again, or keep them in the environment)."""

import base64
import hashlib
import os

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from conversations.exceptions import ParleyError

ENV_PREFIX = "env:"
SEALED_PREFIX = "fernet:"


class SecretUnavailable(ParleyError):
    code = "secret_unavailable"
    default_detail = "A secret of this channel cannot be read."


def _fernet() -> Fernet:
    source = getattr(settings, "PARLEY_SECRETS_KEY", "") or settings.SECRET_KEY
    digest = hashlib.sha256(f"parley.channel-secrets:{source}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(value: str) -> str:
    """What is stored for ``value``: an ``env:NAME`` reference as it is, anything else
    encrypted."""
    value = value.strip()
    if value.startswith(ENV_PREFIX):
        return value
    return SEALED_PREFIX + _fernet().encrypt(value.encode()).decode()


def unseal(stored: str, *, name: str = "secret") -> str:
    if stored.startswith(ENV_PREFIX):
        variable = stored.removeprefix(ENV_PREFIX)
        value = os.environ.get(variable, "")
        if not value:
            raise SecretUnavailable(f"The {name} comes from ${variable}, which is not set.")
        return value
    try:
        return _fernet().decrypt(stored.removeprefix(SEALED_PREFIX).encode()).decode()
    except InvalidToken:
        raise SecretUnavailable(
            f"The stored {name} cannot be decrypted (the secrets key changed): enter it again."
        ) from None
