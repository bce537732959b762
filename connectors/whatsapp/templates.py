"""WhatsApp message templates synced from the Graph API
(``GET /{business_account_id}/message_templates``, following ``paging.next``)."""

from django.db import transaction

from conversations.exceptions import InvalidInput

from ..models import Channel
from . import graph
from .models import WhatsAppTemplate

MAX_PAGES = 50
FIELDS = "name,language,status,components"


def _body(template: dict) -> str:
    return next(
        (c.get("text", "") for c in template.get("components", []) if c.get("type") == "BODY"), ""
    )


def templates_sync(*, channel: Channel) -> int:
    """Create or update the channel's templates from Meta's list; returns how many."""
    if not channel.business_account_id:
        raise InvalidInput("Set the channel's WhatsApp Business Account id to sync templates.")
    path = f"{channel.business_account_id}/message_templates?fields={FIELDS}"
    found = []
    for _ in range(MAX_PAGES):
        page = graph.call(channel, path)
        found += page.get("data", [])
        after = (page.get("paging") or {}).get("cursors", {}).get("after")
        if not (page.get("paging") or {}).get("next") or not after:
            break
        path = f"{channel.business_account_id}/message_templates?fields={FIELDS}&after={after}"
    with transaction.atomic():
        for item in found:
            WhatsAppTemplate.objects.update_or_create(
                channel=channel,
                name=item["name"],
                language=item.get("language", "en_US"),
                defaults={"body": _body(item), "status": item.get("status", "")},
            )
    return len(found)
