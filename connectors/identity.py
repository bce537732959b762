"""Signed visitor identity for the web chat (like Chatwoot's identity validation).

A site whose customer is logged in opens the chat as that customer:

    /chat/<channel>/?identifier=<id>&identifier_hash=<hex>&name=<name>

where ``identifier_hash`` is the hex HMAC-SHA256 of ``identifier`` (UTF-8) under the
channel's ``identity_secret``, computed on the site's server (the secret never
reaches the browser). A valid hash makes ``identifier`` the contact's external id
and lets ``name`` through; a wrong or missing hash, or a channel without a secret, is
refused with a sentence, and nothing changes.
"""

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from conversations.exceptions import ParleyError
from conversations.services import clean_text

from .models import Channel


@dataclass(frozen=True)
class Visitor:
    id: str  # the contact's external_id on the channel
    name: str = ""
    verified: bool = False  # from a signed identity


class IdentityRefused(ParleyError):
    code = "identity_refused"
    http_status = 403
    default_detail = (
        "This chat link's identity could not be verified; open the chat again from the site."
    )


def identity_hash(secret: str, identifier: str) -> str:
    return hmac.new(secret.encode(), identifier.encode(), hashlib.sha256).hexdigest()


def verified_visitor(params: Mapping, channel: Channel | None) -> Visitor | None:
    """The visitor a signed identity in ``params`` names; None when there is none.
    Raises ``IdentityRefused`` for a bad one."""
    identifier = params.get("identifier")
    given_hash = params.get("identifier_hash")
    if identifier is None and given_hash is None:
        return None
    secret = channel.identity_secret if channel is not None else ""
    if not secret:
        raise IdentityRefused(
            "This chat does not accept signed identities (its channel has no identity "
            "secret); open it without identifier and identifier_hash."
        )
    try:
        identifier = clean_text(identifier, field="identifier", max_length=255)
        name = clean_text(params.get("name", ""), field="name", max_length=200, required=False)
    except ParleyError as refusal:
        raise IdentityRefused(f"The chat link's identity is not valid: {refusal.detail}") from None
    expected = identity_hash(secret, identifier)
    if not hmac.compare_digest(expected, (given_hash or "").strip().lower()):
        raise IdentityRefused(
            "The chat link's identity could not be verified (identifier_hash is not the "
            "HMAC-SHA256 of the identifier under this chat's secret); open the chat again "
            "from the site."
        )
    return Visitor(id=identifier, name=name, verified=True)
