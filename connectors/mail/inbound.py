"""One fetched email into the inbox, through the inbound engine
(``services.message_receive``), never around it.

Threading: a reply belongs to the contact of the conversation it answers, found by
the signed reply token in the address it was sent to (``support+c42-…@``) or by its
``In-Reply-To``/``References`` among the Message-IDs stored here; otherwise the
sender's address is the contact. The status table then decides the conversation:
the contact's open one, or a new one after a close."""

import re
from email.utils import formataddr

from django.core.files.base import ContentFile
from django.db import IntegrityError
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from conversations import services
from conversations.exceptions import InvalidInput
from conversations.locks import retrying_atomic
from conversations.models import Contact, Conversation, Source

from .models import MailAttachment, Mailbox, MailMessage
from .parse import ParsedMail, parse

REPLY_ADDRESS_SALT = "parley.mail.reply-token"
UNIQUE_MESSAGE_ID = "mailmessage_unique_per_channel"
REPLY_TOKEN = re.compile(r"\+c(\d+)-([0-9a-f]{12})@")


def _token_signature(mailbox: Mailbox, conversation_id: int) -> str:
    signed = salted_hmac(
        REPLY_ADDRESS_SALT, f"{mailbox.channel_id}:{conversation_id}", algorithm="sha256"
    )
    return signed.hexdigest()[:12]


def reply_address(mailbox: Mailbox, conversation_id: int) -> str:
    """The support address with a signed token naming the conversation
    (plus-addressing: the mailbox still receives it)."""
    local, _, domain = mailbox.address.partition("@")
    return f"{local}+c{conversation_id}-{_token_signature(mailbox, conversation_id)}@{domain}"


def from_header(mailbox: Mailbox, agent_name: str = "") -> str:
    name = f"{agent_name} at {mailbox.from_name}" if agent_name else mailbox.from_name
    return formataddr((name, mailbox.address))


def token_conversation(mailbox: Mailbox, recipients: list[str]) -> int | None:
    local = mailbox.address.partition("@")[0].lower()
    for address in recipients:
        found = REPLY_TOKEN.search(address)
        if found and address.startswith(f"{local}+"):
            pk = int(found[1])
            if constant_time_compare(found[2], _token_signature(mailbox, pk)):
                return pk
    return None


def thread_contact(mailbox: Mailbox, mail: ParsedMail) -> Contact | None:
    """The contact of the conversation this mail answers, if it answers one of ours."""
    pk = token_conversation(mailbox, mail.recipients)
    conversations = Conversation.objects.filter(contact__channel=mailbox.channel.slug)
    if pk is not None:
        conversation = conversations.select_related("contact").filter(pk=pk).first()
        if conversation is not None:
            return conversation.contact
    answered = [mail.in_reply_to, *reversed(mail.references)]
    answered = [message_id for message_id in answered if message_id]
    if not answered:
        return None
    earlier = (
        MailMessage.objects.filter(channel=mailbox.channel_id, msgid__in=answered)
        .select_related("message__conversation__contact")
        .order_by("-message__created_at")
        .first()
    )
    return earlier.message.conversation.contact if earlier else None


@retrying_atomic
def store(mailbox: Mailbox, uid: int, raw: bytes) -> str:
    """Store one fetched mail and move the mailbox past ``uid``, in one transaction:
    a crash before the commit fetches it again, after it never. What happened, in
    a few words (for the log)."""
    box = Mailbox.objects.select_for_update().select_related("channel").get(pk=mailbox.pk)
    if uid <= box.last_uid:
        return "already fetched"
    now = timezone.now()
    Mailbox.objects.filter(pk=box.pk).update(last_uid=uid, last_checked_at=now)
    mail = parse(raw)
    if mail.automated:
        return f"skipped: {mail.automated}"
    local, _, domain = mail.sender.partition("@")
    if f"{local.partition('+')[0]}@{domain}" == box.address.lower():
        return "skipped: sent by this mailbox (a loop)"
    if MailMessage.objects.filter(channel=box.channel_id, msgid=mail.message_id).exists():
        return "skipped: a Message-ID already stored"
    contact = thread_contact(box, mail)
    channel, external_id = (contact.channel, contact.external_id) if contact else ("", "")
    try:
        inbound = services.message_receive(
            channel=channel or box.channel.slug,
            external_id=external_id or mail.sender,
            name=(mail.name or None) if not contact else None,
            text=mail.text,
            source=Source.CONTACT,
        )
    except InvalidInput as error:
        return f"skipped: {error}"
    record = MailMessage.objects.create(
        message=inbound.message,
        channel_id=box.channel_id,
        msgid=mail.message_id,
        subject=mail.subject,
        in_reply_to=mail.in_reply_to,
        references=" ".join(mail.references),
        html=mail.html,
        quoted_html=mail.quoted_html,
    )
    for attachment in mail.attachments:
        stored = MailAttachment(
            mail=record,
            filename=attachment.filename,
            content_type=attachment.content_type,
            size=len(attachment.content),
        )
        stored.file.save(attachment.filename, ContentFile(attachment.content), save=False)
        stored.save()
    Mailbox.objects.filter(pk=box.pk).update(last_received_at=now)
    return f"conversation {inbound.conversation.pk}"


def store_or_skip(mailbox: Mailbox, uid: int, raw: bytes) -> str:
    """``store``, where a Message-ID stored meanwhile by another fetcher (the unique
    constraint) is a skip, not an error."""
    try:
        return store(mailbox, uid, raw)
    except IntegrityError as error:
        diag = getattr(error.__cause__, "diag", None)
        if getattr(diag, "constraint_name", "") != UNIQUE_MESSAGE_ID:
            raise
        Mailbox.objects.filter(pk=mailbox.pk, last_uid__lt=uid).update(last_uid=uid)
        return "skipped: a Message-ID already stored"
