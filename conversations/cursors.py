"""Opaque keyset-pagination cursors (the inbox and the API): a JSON list of the
sort key's values, base64url without padding. Callers check the shape they expect."""

import base64
import binascii
import json


def cursor_pack(*values) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_unpack(token: str) -> list:
    """The values packed in ``token``; ValueError for anything that is not a cursor."""
    try:
        padded = token + "=" * (-len(token) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (TypeError, UnicodeError, binascii.Error, ValueError) as exc:
        raise ValueError("not a cursor") from exc
    if not isinstance(values, list):
        raise ValueError("not a cursor")
    return values
