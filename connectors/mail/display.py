"""Email messages in the inbox's thread: the sanitised HTML (or the text), the quoted
history folded in a <details>, the attachments as links (``hooks.message_bodies``)."""

from django.dispatch import receiver
from django.template.loader import render_to_string
from django.urls import reverse
from markupsafe import Markup

from conversations import hooks

from ..delivery import channel_for
from ..models import ChannelKind
from .models import MailMessage


@receiver(hooks.message_bodies, dispatch_uid="connectors.mail.bodies")
def mail_bodies(sender, *, channel: str, message_ids: list[int], **kwargs) -> dict:
    found = channel_for(channel)
    if found is None or found.kind != ChannelKind.EMAIL:
        return {}
    mails = (
        MailMessage.objects.filter(message__in=message_ids)
        .select_related("message")
        .prefetch_related("attachments")
    )
    bodies = {}
    for mail in mails:
        if not (mail.html or mail.quoted_html or mail.attachments.all()):
            continue
        attachments = [
            (reverse("mail-attachment", args=[a.pk]), a.filename, a.size)
            for a in mail.attachments.all()
        ]
        # html and quoted_html were sanitised with nh3 when the mail was fetched.
        bodies[mail.message_id] = render_to_string(
            "connectors/mail_body.html",
            {
                "html": Markup(mail.html),  # noqa: S704 (sanitised)
                "text": mail.message.text,
                "quoted": Markup(mail.quoted_html),  # noqa: S704 (sanitised)
                "attachments": attachments,
            },
        )
    return bodies
