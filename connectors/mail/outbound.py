"""Replies by email: the headers are decided when the message is stored (a
MailMessage row in the reply's transaction: its Message-ID stays the same over the
delivery's retries), and the delivery task sends it over SMTP."""

import secrets
import smtplib
import ssl
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate

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


def smtp_client(mailbox: Mailbox) -> smtplib.SMTP:
    context = ssl.create_default_context()
    if mailbox.smtp_security == Security.SSL:
        client = smtplib.SMTP_SSL(
            mailbox.smtp_host, mailbox.smtp_port, timeout=TIMEOUT_SECONDS, context=context
        )
    else:
        client = smtplib.SMTP(mailbox.smtp_host, mailbox.smtp_port, timeout=TIMEOUT_SECONDS)
        if mailbox.smtp_security == Security.STARTTLS:
            client.starttls(context=context)
    client.login(mailbox.smtp_user or mailbox.imap_user, mailbox.password)
    return client


def send(delivery: Delivery) -> None:
    """Send one outbound message of an email channel (the delivery task retries)."""
    message = delivery.message
    mail = MailMessage.objects.get(message=message)
    mailbox = Mailbox.objects.get(channel=delivery.channel_id)
    contact = message.conversation.contact
    author = message.author
    email = EmailMessage(policy=policy.SMTP)
    email["Message-ID"] = f"<{mail.msgid}>"
    email["Date"] = formatdate(localtime=True)
    email["Subject"] = mail.subject
    agent_name = (author.get_full_name() or author.get_username()) if author else ""
    email["From"] = from_header(mailbox, agent_name)
    email["To"] = formataddr((contact.name, contact.external_id))
    email["Reply-To"] = reply_address(mailbox, message.conversation_id)
    if mail.in_reply_to:
        email["In-Reply-To"] = f"<{mail.in_reply_to}>"
        email["References"] = " ".join(f"<{ref}>" for ref in mail.references.split())
    if message.sender_kind != SenderKind.AGENT:
        email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-reply to it
    email.set_content(message.text)
    with smtp_client(mailbox) as client:
        client.send_message(email)
