"""What may be sent to a WhatsApp contact, and how it is asked of the Graph API.

WhatsApp's customer-service window: a business may send free text only within 24
hours of the contact's last message; outside it, only an approved template. The
checks run before anything is stored (``hooks.message_sending``,
``flows.broadcasts.broadcast_requested``), so a refusal leaves no trace."""

from datetime import timedelta

from django.db.models import Exists, OuterRef
from django.dispatch import receiver
from django.utils import timezone

from conversations import hooks
from conversations.exceptions import InvalidInput, ParleyError
from conversations.models import Direction, Message
from flows.broadcasts import broadcast_requested

from ..delivery import channel_for
from ..models import Channel, ChannelKind
from .models import WhatsAppTemplate

WINDOW = timedelta(hours=24)


class OutsideWindow(ParleyError):
    code = "outside_window"
    default_detail = (
        "This WhatsApp contact has not written in the last 24 hours, so WhatsApp only "
        "accepts an approved template now: choose a template instead of free text."
    )


def _whatsapp(slug: str) -> Channel | None:
    channel = channel_for(slug)
    return channel if channel is not None and channel.kind == ChannelKind.WHATSAPP else None


def templates_for(slug: str) -> list[WhatsAppTemplate]:
    """The approved templates an agent may send on a contact channel ([] unless WhatsApp)."""
    channel = _whatsapp(slug)
    if channel is None:
        return []
    return list(WhatsAppTemplate.objects.filter(channel=channel, status="APPROVED"))


def in_window(contact_id: int) -> bool:
    return Message.objects.filter(
        conversation__contact_id=contact_id,
        direction=Direction.INBOUND,
        created_at__gte=timezone.now() - WINDOW,
    ).exists()


def template_for(channel: Channel, template: dict) -> WhatsAppTemplate:
    name = str(template.get("name", "")).strip()
    found = WhatsAppTemplate.objects.filter(channel=channel, name=name, status="APPROVED")
    if template.get("language"):
        found = found.filter(language=template["language"])
    chosen = found.order_by("language").first()
    if chosen is None:
        raise InvalidInput(f"There is no approved WhatsApp template named “{name}” on {channel}.")
    params = template.get("params") or []
    if len(params) != chosen.param_count:
        raise InvalidInput(
            f"The template “{name}” takes {chosen.param_count} parameter(s); {len(params)} given."
        )
    return chosen


@receiver(hooks.message_sending, dispatch_uid="connectors.whatsapp.window")
def check_outbound(sender, *, conversation, text, template, **kwargs) -> str | None:
    """Refuse free text outside the window; a template's body is what is stored."""
    channel = _whatsapp(conversation.contact.channel)
    if channel is None:
        return None
    if template:
        return template_for(channel, template).render(list(template.get("params") or []))
    if not in_window(conversation.contact_id):
        raise OutsideWindow()
    return None


def payload(*, channel: Channel, to: str, text: str, template: dict | None) -> dict:
    """The body of POST /{phone_number_id}/messages."""
    body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to}
    if not template:
        return body | {"type": "text", "text": {"preview_url": False, "body": text}}
    chosen = template_for(channel, template)
    spec = {"name": chosen.name, "language": {"code": chosen.language}}
    params = list(template.get("params") or [])
    if params:
        parameters = [{"type": "text", "text": p} for p in params]
        spec["components"] = [{"type": "body", "parameters": parameters}]
    return body | {"type": "template", "template": spec}


@receiver(broadcast_requested, dispatch_uid="connectors.whatsapp.broadcast_window")
def check_broadcast(sender, *, flow, first_message_step, contacts, **kwargs) -> None:
    """A broadcast whose first message is free text is refused when it would reach
    WhatsApp contacts outside the window (they could not receive it)."""
    if first_message_step is None or first_message_step.template:
        return
    slugs = Channel.objects.filter(kind=ChannelKind.WHATSAPP, is_active=True).values("slug")
    recent = Message.objects.filter(
        conversation__contact_id=OuterRef("pk"),
        direction=Direction.INBOUND,
        created_at__gte=timezone.now() - WINDOW,
    )
    outside = contacts.filter(channel__in=slugs).exclude(Exists(recent)).count()
    if outside:
        raise OutsideWindow(
            f"{outside} contact(s) of this segment are on WhatsApp and have not written in "
            "the last 24 hours: WhatsApp only accepts an approved template there. Name a "
            f"template on the first message step of “{flow.name}”, then broadcast again."
        )
