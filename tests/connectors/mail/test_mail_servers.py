"""The email channel end to end against real servers: mail delivered to a dovecot
mailbox is fetched over IMAP into the inbox; agents' replies go out through an SMTP
server (aiosmtpd) with threading headers; the answers come back into the same
conversation; machines' mail opens nothing; nothing is fetched twice."""

import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from connectors.mail.fetch import connect, fetch_new, watch
from connectors.mail.inbound import reply_address
from connectors.mail.models import MailAttachment, Mailbox, MailMessage
from connectors.models import Delivery
from conversations import services
from conversations.models import Contact, Conversation, Message
from conversations.transitions import Status

pytestmark = [pytest.mark.django_db, pytest.mark.mail]

IMMEDIATE = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
DANA = "Dana Client <dana@customer.test>"


def mail(
    *,
    sender: str = DANA,
    to: str = "",
    subject: str = "The printer is on fire",
    text: str = "Hello,\nthe printer is on fire.\nDana",
    html: str = "",
    headers: dict | None = None,
    attachments: tuple = (),
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="customer.test")
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    for filename, content, mimetype in attachments:
        maintype, subtype = mimetype.split("/")
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return message


def deliver(dovecot, mailbox: Mailbox, **kwargs) -> EmailMessage:
    message = mail(to=kwargs.pop("to", mailbox.address), **kwargs)
    dovecot.deliver(mailbox.imap_user, message)
    return message


def fetch(mailbox: Mailbox) -> int:
    imap = connect(mailbox)
    try:
        return fetch_new(mailbox, imap)
    finally:
        imap.shutdown()


def dana() -> Contact:
    return Contact.objects.get(channel="mail", external_id="dana@customer.test")


def test_mail_in_the_mailbox_becomes_a_conversation(dovecot, mailbox, agent_client):
    sent = deliver(
        dovecot,
        mailbox,
        text="Hello,\nthe printer is on fire.\n\nOn Mon, 1 Jan 2026, Support wrote:\n> Old news",
        html=(
            '<p onclick="steal()">Hello, the <b>printer</b> is on fire.</p>'
            '<img src="https://tracker.test/pixel.gif"><script>alert(1)</script>'
            '<div class="gmail_quote">On Monday Support wrote:<blockquote>Old news'
            "</blockquote></div>"
        ),
        attachments=[("photo.jpg", b"\xff\xd8 jpeg bytes", "image/jpeg")],
    )
    assert fetch(mailbox) == 1

    contact = dana()
    assert contact.name == "Dana Client"
    conversation = contact.conversations.get()
    assert conversation.status == Status.NEW
    message = conversation.messages.get()
    assert message.text == "Hello,\nthe printer is on fire."  # the quoted history trimmed
    stored = MailMessage.objects.get(message=message)
    assert f"<{stored.msgid}>" == sent["Message-ID"]
    assert stored.subject == "The printer is on fire"
    assert "<b>printer</b>" in stored.html
    assert "script" not in stored.html and "onclick" not in stored.html
    assert "tracker.test" not in stored.html
    assert "Old news" in stored.quoted_html and "Old news" not in stored.html
    [attachment] = MailAttachment.objects.filter(mail=stored)
    assert (attachment.filename, attachment.size) == ("photo.jpg", len(b"\xff\xd8 jpeg bytes"))

    pane = agent_client.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert "<b>printer</b>" in pane
    assert "<details" in pane and "Show quoted text" in pane and "Old news" in pane
    link = f"/mail/attachments/{attachment.pk}/"
    assert link in pane and "photo.jpg" in pane
    download = agent_client.get(link)
    assert b"".join(download.streaming_content) == b"\xff\xd8 jpeg bytes"
    assert download["Content-Disposition"].startswith("attachment")

    mailbox.refresh_from_db()
    assert mailbox.last_uid == 1 and mailbox.uidvalidity
    assert mailbox.last_received_at is not None and mailbox.last_error == ""


def test_attachments_need_a_login(client, dovecot, mailbox):
    deliver(dovecot, mailbox, attachments=[("a.txt", b"secret", "text/plain")])
    fetch(mailbox)
    response = client.get(f"/mail/attachments/{MailAttachment.objects.get().pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def _reply(conversation, agent, text, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return services.conversation_reply(conversation=conversation, agent=agent, text=text)


def test_reply_goes_out_threaded_and_the_answer_lands_in_the_same_conversation(
    settings, dovecot, mailbox, smtp_server, agent, django_capture_on_commit_callbacks
):
    settings.TASKS = IMMEDIATE
    first = deliver(dovecot, mailbox)
    fetch(mailbox)
    conversation = dana().conversations.get()

    reply = _reply(conversation, agent, "We are on it.", django_capture_on_commit_callbacks)
    assert Delivery.objects.get(message=reply).status == "delivered"
    [(envelope_from, recipients, raw)] = smtp_server.received
    assert recipients == ["dana@customer.test"]
    assert smtp_server.logins == [mailbox.imap_user]
    sent = message_from_bytes(raw, policy=policy.default)
    assert sent["From"] == f"Alice at Parley <{mailbox.address}>"
    assert sent["To"] == DANA
    assert sent["Subject"] == "Re: The printer is on fire"
    assert sent["In-Reply-To"] == first["Message-ID"]
    assert sent["References"] == first["Message-ID"]
    assert sent["Message-ID"] == f"<{MailMessage.objects.get(message=reply).msgid}>"
    assert sent["Reply-To"] == reply_address(mailbox, conversation.pk)
    assert "Auto-Submitted" not in sent  # a person wrote it
    assert sent.get_body(preferencelist=("plain",)).get_content().strip() == "We are on it."

    # Dana answers (her client threads by In-Reply-To and writes to the Reply-To).
    answer = deliver(
        dovecot,
        mailbox,
        to=sent["Reply-To"],
        subject="Re: The printer is on fire",
        text="Thanks, it is out now.\n\nOn Tue, Alice at Parley wrote:\n> We are on it.",
        headers={
            "In-Reply-To": sent["Message-ID"],
            "References": f"{first['Message-ID']} {sent['Message-ID']}",
        },
    )
    assert fetch(mailbox) == 1
    conversation.refresh_from_db()
    assert Conversation.objects.filter(contact__channel="mail").count() == 1
    assert conversation.status == Status.IN_PROGRESS
    assert list(conversation.messages.values_list("text", flat=True)) == [
        "Hello,\nthe printer is on fire.\nDana",
        "We are on it.",
        "Thanks, it is out now.",
    ]

    # The next reply carries the whole thread.
    _reply(conversation, agent, "Glad to hear.", django_capture_on_commit_callbacks)
    second = message_from_bytes(smtp_server.received[-1][2], policy=policy.default)
    assert second["In-Reply-To"] == answer["Message-ID"]
    assert second["References"].split() == [
        first["Message-ID"],
        sent["Message-ID"],
        answer["Message-ID"],
    ]


def test_the_reply_token_threads_a_mail_from_another_address(
    settings, dovecot, mailbox, agent, django_capture_on_commit_callbacks
):
    settings.TASKS = IMMEDIATE
    deliver(dovecot, mailbox)
    fetch(mailbox)
    conversation = dana().conversations.get()
    _reply(conversation, agent, "Which model?", django_capture_on_commit_callbacks)

    # From her phone, another address, no threading headers: the token decides.
    token_address = reply_address(mailbox, conversation.pk)
    deliver(dovecot, mailbox, sender="dana.phone@mobile.test", to=token_address, text="A P-100")
    # A guessed token is ignored: the sender is the contact.
    forged = token_address.replace(token_address.split("-")[-1][:4], "0000")
    deliver(dovecot, mailbox, sender="eve@evil.test", to=forged, text="Let me in")
    assert fetch(mailbox) == 2

    assert conversation.messages.filter(text="A P-100").exists()
    assert not Contact.objects.filter(external_id="dana.phone@mobile.test").exists()
    eve = Contact.objects.get(channel="mail", external_id="eve@evil.test")
    assert eve.conversations.get().messages.get().text == "Let me in"


def test_a_new_subject_after_close_opens_a_new_conversation(
    settings, dovecot, mailbox, agent, django_capture_on_commit_callbacks
):
    settings.TASKS = IMMEDIATE
    deliver(dovecot, mailbox)
    fetch(mailbox)
    first = dana().conversations.get()
    _reply(first, agent, "Fixed.", django_capture_on_commit_callbacks)
    services.conversation_close(conversation=first, actor=agent)

    deliver(dovecot, mailbox, subject="Invoice question", text="Where is my invoice?")
    fetch(mailbox)
    first.refresh_from_db()
    assert first.status == Status.CLOSED
    assert first.messages.count() == 2
    second = dana().conversations.exclude(pk=first.pk).get()
    assert second.status == Status.NEW
    assert second.messages.get().text == "Where is my invoice?"


AUTOMATED = {
    "out of office": {"headers": {"Auto-Submitted": "auto-replied"}, "subject": "Out of office"},
    "precedence bulk": {"headers": {"Precedence": "bulk"}},
    "precedence junk": {"headers": {"Precedence": "junk"}},
    "precedence list": {"headers": {"Precedence": "list"}},
    "x-autoreply": {"headers": {"X-Autoreply": "yes"}, "subject": "Auto: away"},
    "mailer-daemon": {"sender": "MAILER-DAEMON@mx.customer.test", "subject": "Undeliverable"},
}

BOUNCE = b"""\
From: Mail Delivery System <postmaster@mx.customer.test>
To: SUPPORT
Subject: Delivery Status Notification (Failure)
Message-ID: <bounce-1@mx.customer.test>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

Your message could not be delivered.
--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.test
Final-Recipient: rfc822; nobody@customer.test
Action: failed
Status: 5.1.1
--b--
"""


@pytest.mark.parametrize("kind", [*AUTOMATED, "delivery report"])
def test_auto_replies_and_bounces_open_nothing(
    settings, dovecot, mailbox, smtp_server, django_capture_on_commit_callbacks, kind
):
    settings.TASKS = IMMEDIATE
    if kind == "delivery report":
        dovecot.deliver(mailbox.imap_user, BOUNCE.replace(b"SUPPORT", mailbox.address.encode()))
    else:
        deliver(dovecot, mailbox, **AUTOMATED[kind])
    with django_capture_on_commit_callbacks(execute=True):
        assert fetch(mailbox) == 1
    assert not Message.objects.exists()
    assert not Conversation.objects.filter(contact__channel="mail").exists()
    assert smtp_server.received == []  # and nothing answers it
    mailbox.refresh_from_db()
    assert mailbox.last_uid == 1  # seen, and never fetched again


def test_mail_from_the_support_address_itself_opens_nothing(dovecot, mailbox):
    local, domain = mailbox.address.split("@")
    deliver(dovecot, mailbox, sender=f"{local}+c1-abc@{domain}", subject="Re: loop")
    deliver(dovecot, mailbox, sender=mailbox.address, subject="Re: loop")
    assert fetch(mailbox) == 2
    assert not Message.objects.exists()


def test_auto_submitted_no_is_a_person(dovecot, mailbox):
    deliver(dovecot, mailbox, headers={"Auto-Submitted": "no"})
    fetch(mailbox)
    assert dana().conversations.get().status == Status.NEW


def test_a_restarted_fetcher_fetches_nothing_twice(dovecot, mailbox):
    deliver(dovecot, mailbox)
    deliver(dovecot, mailbox, text="And the scanner too.")
    call_command("fetch_mail", "--once")
    assert Message.objects.count() == 2

    # A restart: a new process, a new connection, the place kept in the database.
    deliver(dovecot, mailbox, text="Now the coffee machine.")
    call_command("fetch_mail", "--once")
    call_command("fetch_mail", "--once")
    assert list(Message.objects.values_list("text", flat=True)) == [
        "Hello,\nthe printer is on fire.\nDana",
        "And the scanner too.",
        "Now the coffee machine.",
    ]
    mailbox.refresh_from_db()
    assert mailbox.last_uid == 3

    # The UIDs start over (a rebuilt folder, or a place lost): the Message-IDs guard.
    Mailbox.objects.filter(pk=mailbox.pk).update(uidvalidity=1, last_uid=0)
    assert fetch(mailbox) == 3
    assert Message.objects.count() == 3
    assert MailMessage.objects.count() == 3


def test_a_failing_mailbox_shows_its_error_in_the_admin(dovecot, mailbox, staff_client):
    Mailbox.objects.filter(pk=mailbox.pk).update(imap_port=1)
    call_command("fetch_mail", "--once", stderr=open("/dev/null", "w"))  # noqa: SIM115
    page = staff_client.get("/admin/connectors/mailbox/").content.decode()
    assert "Failing: ConnectionRefusedError" in page

    Mailbox.objects.filter(pk=mailbox.pk).update(imap_port=dovecot.port)
    deliver(dovecot, mailbox)
    call_command("fetch_mail", "--once")
    page = staff_client.get(f"/admin/connectors/mailbox/{mailbox.pk}/change/").content.decode()
    assert "Last received at" in page and "OK" in page


def test_an_unreachable_smtp_server_is_retried_then_failed(
    settings, dovecot, mailbox, agent, django_capture_on_commit_callbacks
):
    settings.TASKS = IMMEDIATE
    deliver(dovecot, mailbox)
    fetch(mailbox)
    Mailbox.objects.filter(pk=mailbox.pk).update(smtp_port=1)
    reply = _reply(dana().conversations.get(), agent, "Hello?", django_capture_on_commit_callbacks)
    delivery = Delivery.objects.get(message=reply)
    assert delivery.status == "failed" and delivery.attempts == 5
    assert "ConnectionRefusedError" in delivery.last_error


@pytest.mark.django_db(transaction=True)
def test_the_watcher_idles_and_fetches_mail_as_it_arrives(dovecot, mailbox):
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(mailbox.pk, stop))
    watcher.start()
    try:
        deadline = time.monotonic() + 10
        while Mailbox.objects.get(pk=mailbox.pk).last_checked_at is None:
            assert time.monotonic() < deadline, "the watcher did not fetch"
            time.sleep(0.05)
        deliver(dovecot, mailbox)  # while it is in IDLE
        while not Message.objects.exists():
            assert time.monotonic() < deadline, "IDLE did not bring the mail"
            time.sleep(0.05)
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert not watcher.is_alive()
    assert dana().conversations.get().status == Status.NEW
    connection.close()


def _pane_queries(client, conversation) -> int:
    client.get(f"/inbox/c/{conversation.pk}/")  # the memories warm
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/inbox/c/{conversation.pk}/").status_code == 200
    return len(queries)


def test_the_pane_of_an_email_conversation_does_not_grow_with_its_mails(
    dovecot, mailbox, agent_client
):
    deliver(dovecot, mailbox, sender="one@customer.test", html="<p>Hi</p>")
    for index in range(4):
        deliver(
            dovecot,
            mailbox,
            html=f"<p>Mail {index}</p>",
            attachments=[(f"file{index}.txt", b"x", "text/plain")],
        )
    fetch(mailbox)
    one = Contact.objects.get(external_id="one@customer.test").conversations.get()
    many = dana().conversations.get()
    assert _pane_queries(agent_client, one) == _pane_queries(agent_client, many)


def test_flow_messages_say_they_are_automatic(
    settings, dovecot, mailbox, smtp_server, django_capture_on_commit_callbacks
):
    settings.TASKS = IMMEDIATE
    deliver(dovecot, mailbox)
    fetch(mailbox)
    with django_capture_on_commit_callbacks(execute=True):
        services.message_send_automated(conversation=dana().conversations.get(), text="Hi!")
    sent = message_from_bytes(smtp_server.received[-1][2], policy=policy.default)
    assert sent["Auto-Submitted"] == "auto-generated"
    assert sent["From"] == f"Parley <{mailbox.address}>"
