"""Reading an email: the new text without the quoted history, sanitised HTML, and
which mail a machine sent."""

import pytest

from connectors.mail.parse import parse, split_quoted_text


@pytest.mark.parametrize(
    ("text", "new"),
    [
        (
            "Thanks!\n\nOn Mon, 1 Jan 2026 at 10:00, Support <s@x.test> wrote:\n> Hi\n> there",
            "Thanks!",
        ),
        ("Thanks!\n\nOn Mon, 1 Jan 2026 at 10:00, Support <\ns@x.test> wrote:\n\n> Hi", "Thanks!"),
        ("Merci\n\nLe lun. 1 janv. 2026, Support a écrit :\n> Bonjour", "Merci"),
        ("Yes\n\n-----Original Message-----\nFrom: Support\nSent: Monday", "Yes"),
        ("Yes\n> quoted at the end\n>\n> more", "Yes"),
        # Interleaved answers keep everything: the quote is not at the end.
        ("> Which model?\nA P-100\n> Since when?\nYesterday", None),
        ("Someone wrote: this is not an attribution", None),
    ],
)
def test_the_quoted_history_is_split_off(text, new):
    body, quoted = split_quoted_text(text)
    assert body == (new if new is not None else text)
    assert bool(quoted) == (new is not None)


def _raw(headers: str, body: str = "Hello") -> bytes:
    return (
        f"From: Dana <dana@customer.test>\nTo: support@example.com\n{headers}\n\n{body}\n".encode()
    )


def test_html_only_mail_gets_a_text_and_loses_everything_active():
    mail = parse(
        _raw(
            "Subject: x\nMessage-ID: <a@b>\nContent-Type: text/html; charset=utf-8",
            '<html><head><title>T</title><style>p{}</style></head><body><p>Hello&nbsp;<a href="'
            'javascript:alert(1)" onclick="x()">there</a></p><iframe src="https://e.test">'
            "</iframe><p>Line two</p></body></html>",
        )
    )
    assert mail.text == "Hello there\nLine two"
    assert "javascript" not in mail.html and "onclick" not in mail.html
    assert "iframe" not in mail.html and "<title>" not in mail.html and "p{}" not in mail.html
    assert "<p>Line two</p>" in mail.html


def test_a_mail_without_message_id_gets_the_same_one_each_time():
    raw = _raw("Subject: no id")
    assert parse(raw).message_id == parse(raw).message_id
    assert parse(raw).message_id.endswith("@parley.invalid")
    assert parse(raw).message_id != parse(_raw("Subject: other")).message_id


def test_a_lying_charset_does_not_stop_the_fetch():
    mail = parse(_raw("Content-Type: text/plain; charset=no-such-charset", "Caf\xe9"))
    assert mail.text.startswith("Caf")


@pytest.mark.parametrize(
    ("headers", "automated"),
    [
        ("Auto-Submitted: auto-replied", True),
        ("Auto-Submitted: auto-generated; owner-email=x@y", True),
        ("Auto-Submitted: no", False),
        ("Precedence: bulk", True),
        ("Precedence: first-class", False),
        ("X-Autorespond: yes", True),
        ("Return-Path: <>", True),
        ("Return-Path: <dana@customer.test>", False),
    ],
)
def test_machines_mail_is_recognised(headers, automated):
    assert bool(parse(_raw(headers)).automated) == automated
