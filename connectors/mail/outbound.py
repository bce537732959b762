"""Replies by email: the headers are decided when the message is stored (a
MailMessage row in the reply's transaction: its Message-ID stays the same over the
delivery's retries), and the delivery task sends it over SMTP."""

import secrets
from email.utils import formataddr

from django.core.mail import EmailMessage
from django.core.mail.backends.smtp import EmailBackend
from django.dispatch import receiver

from conversations import hooks
from conversations.models import Message, SenderKind

from ..delivery import channel_for
from ..models import ChannelKind, Delivery
from .inbound import from_header, reply_address
from .models import Mailbox, MailMessage, Security

REFERENCES_KEPT = 20
TIMEOUT_SECONDS = 30


def reply_subject(subject: str) -> str:
    return subject if subject[:3].lower() == "re:" else f"Re: {subject}"


@receiver(hooks.message_sent, dispatch_uid="connectors.mail.record_outbound")
def record_outbound(sender, *, message: Message, conversation, **kwargs) -> None:
    channel = channel_for(conversation.contact.channel)
    if channel is None or channel.kind != ChannelKind.EMAIL:
        return
    mailbox = Mailbox.objects.filter(channel=channel).first()
    if mailbox is None:
        return
    previous = (
        MailMessage.objects.filter(message__conversation=conversation)
        .order_by("-message__created_at", "-message_id")
        .first()
    )
    references = f"{previous.references} {previous.msgid}".split() if previous else []
    MailMessage.objects.create(
        message=message,
        channel=channel,
        msgid=f"parley.{message.pk}.{secrets.token_hex(8)}@{mailbox.domain}",
        subject=reply_subject(previous.subject) if previous else f"From {mailbox.from_name}",
        in_reply_to=previous.msgid if previous else "",
        references=" ".join(references[-REFERENCES_KEPT:]),
    )


def smtp_connection(mailbox: Mailbox) -> EmailBackend:
    return EmailBackend(
        host=mailbox.smtp_host,
        port=mailbox.smtp_port,
        username=mailbox.smtp_user or mailbox.imap_user,
        password=mailbox.password,
        use_tls=mailbox.smtp_security == Security.STARTTLS,
        use_ssl=mailbox.smtp_security == Security.SSL,
        timeout=TIMEOUT_SECONDS,
    )


def send(delivery: Delivery) -> None:
    """Send one outbound message of an email channel (the delivery task retries)."""
    message = delivery.message
    mail = MailMessage.objects.get(message=message)
    mailbox = Mailbox.objects.get(channel=delivery.channel_id)
    contact = message.conversation.contact
    author = message.author
    headers = {"Message-ID": f"<{mail.msgid}>"}
    if mail.in_reply_to:
        headers["In-Reply-To"] = f"<{mail.in_reply_to}>"
        headers["References"] = " ".join(f"<{ref}>" for ref in mail.references.split())
    if message.sender_kind != SenderKind.AGENT:
        headers["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-reply to it
    agent_name = (author.get_full_name() or author.get_username()) if author else ""
    EmailMessage(
        subject=mail.subject,
        body=message.text,
        from_email=from_header(mailbox, agent_name),
        to=[formataddr((contact.name, contact.external_id))],
        reply_to=[reply_address(mailbox, message.conversation_id)],
        headers=headers,
        connection=smtp_connection(mailbox),
    ).send()
