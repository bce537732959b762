"""Reading one email: who wrote it, whether a person did (auto-replies and bounces
never open a conversation), its threading headers, its new text and sanitised HTML
with the quoted history split off, and its attachments."""

import hashlib
import html
import re
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

import nh3

from conversations.models import MESSAGE_MAX_LENGTH

ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img"}  # remote images are trackers
HIDDEN_CONTENT = {"script", "style", "title"}
AUTOMATED_PRECEDENCE = {"bulk", "junk", "list"}
AUTOREPLY_HEADERS = ("X-Autoreply", "X-Autorespond")
DAEMON_SENDERS = {"mailer-daemon", "postmaster"}

# Where the quoted history starts in HTML mail: Gmail, Thunderbird, Apple Mail,
# Yahoo, Outlook.
HTML_QUOTE = re.compile(
    r"<(?:div|blockquote)\b[^>]*(?:class=\"[^\"]*\b(?:gmail_quote|moz-cite-prefix|yahoo_quoted)"
    r"\b|type=\"cite\"|id=\"(?:appendonsend|divRplyFwdMsg)\")",
    re.IGNORECASE,
)
TEXT_ORIGINAL = re.compile(r"^-{2,}\s*(?:Original Message|Forwarded message)\s*-{2,}$", re.I)
TEXT_ATTRIBUTION = re.compile(r"(?:wrote|a écrit|schrieb|escribió)\s?:$", re.IGNORECASE)
BLOCK_END = re.compile(r"<br\s*/?>|</(?:p|div|li|tr|h\d|blockquote|pre)>", re.IGNORECASE)
MESSAGE_IDS = re.compile(r"<([^<>\s]+)>")


@dataclass
class Attachment:
    filename: str
    content_type: str
    content: bytes


@dataclass
class ParsedMail:
    message_id: str
    subject: str
    sender: str
    name: str
    recipients: list[str]
    in_reply_to: str
    references: list[str]
    text: str
    html: str
    quoted_html: str
    automated: str  # why it is not a person's mail; "" when it is
    attachments: list[Attachment] = field(default_factory=list)


def sanitise(markup: str) -> str:
    return nh3.clean(markup, tags=ALLOWED_TAGS, clean_content_tags=HIDDEN_CONTENT).strip()


def message_ids(value) -> list[str]:
    return MESSAGE_IDS.findall(str(value or ""))


def automated(mail: EmailMessage, sender: str) -> str:
    """Why ``mail`` was sent by a machine (RFC 3834 and common practice), or ""."""
    submitted = str(mail.get("Auto-Submitted", "")).split(";")[0].strip().lower()
    if submitted and submitted != "no":
        return f"Auto-Submitted: {submitted}"
    precedence = str(mail.get("Precedence", "")).strip().lower()
    if precedence in AUTOMATED_PRECEDENCE:
        return f"Precedence: {precedence}"
    for header in AUTOREPLY_HEADERS:
        if header in mail:
            return header
    if mail.get_content_type() == "multipart/report":
        return "a delivery report"
    if sender.partition("@")[0] in DAEMON_SENDERS or not sender:
        return f"sent by {sender or 'nobody'}"
    if str(mail.get("Return-Path", "")).strip() == "<>":
        return "a bounce (empty Return-Path)"
    return ""


def split_quoted_text(text: str) -> tuple[str, str]:
    """(what the writer wrote, the quoted history below it)."""
    lines = text.splitlines()

    def quoted_from(index: int) -> bool:
        return all(not line.strip() or line.lstrip().startswith(">") for line in lines[index:])

    for index, line in enumerate(lines):
        stripped = line.strip()
        cut = None
        if TEXT_ORIGINAL.match(stripped) or (stripped.startswith(">") and quoted_from(index)):
            cut = index
        elif TEXT_ATTRIBUTION.search(stripped) and quoted_from(index + 1):
            # "On Mon, … Alice <a@example.com>" wrapped onto two lines
            cut = index - 1 if index and lines[index - 1].lstrip().startswith("On ") else index
        if cut is not None and "\n".join(lines[:cut]).strip():
            return "\n".join(lines[:cut]).strip(), "\n".join(lines[cut:]).strip()
    return text.strip(), ""


def html_to_text(markup: str) -> str:
    flat = nh3.clean(BLOCK_END.sub("\n", markup), tags=set(), clean_content_tags=HIDDEN_CONTENT)
    lines = (" ".join(line.split()) for line in html.unescape(flat).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _content(part) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError):  # an unknown or lying charset
        content = part.get_payload(decode=True).decode("utf-8", errors="replace")
    return content.replace("\r\n", "\n")


def _attachments(mail: EmailMessage, bodies) -> list[Attachment]:
    found = []
    for part in mail.walk():
        if part.is_multipart() or any(part is body for body in bodies):
            continue
        filename = part.get_filename()
        if filename or part.get_content_disposition() == "attachment":
            found.append(
                Attachment(
                    filename=(filename or "attachment").replace("/", "_")[:255],
                    content_type=part.get_content_type(),
                    content=part.get_payload(decode=True) or b"",
                )
            )
    return found


def parse(raw: bytes) -> ParsedMail:
    mail = message_from_bytes(raw, policy=policy.default)
    name, sender = parseaddr(str(mail.get("From", "")))
    sender = sender.strip().lower()
    plain_part = mail.get_body(preferencelist=("plain",))
    html_part = mail.get_body(preferencelist=("html",))
    text, quoted_text = split_quoted_text(_content(plain_part)) if plain_part else ("", "")
    body_html = quoted_html = ""
    if html_part is not None:
        markup = _content(html_part)
        quote = HTML_QUOTE.search(markup)
        head, tail = (markup[: quote.start()], markup[quote.start() :]) if quote else (markup, "")
        body_html, quoted_html = sanitise(head), sanitise(tail)
        if not plain_part:
            text = html_to_text(body_html)
    elif quoted_text:
        quoted_html = sanitise(html.escape(quoted_text).replace("\n", "<br>"))
    ids = message_ids(mail.get("Message-ID"))
    recipients = [
        address.lower()
        for header in ("To", "Cc", "Delivered-To", "X-Original-To")
        for _, address in getaddresses([str(value) for value in mail.get_all(header, [])])
    ]
    attachments = _attachments(mail, (plain_part, html_part))
    if not text:
        text = "(no text)" if not attachments else "(attachments only)"
    if len(text) > MESSAGE_MAX_LENGTH:
        text = text[: MESSAGE_MAX_LENGTH - 1] + "…"
    return ParsedMail(
        # A message without a Message-ID gets one made of its bytes, the same each time.
        message_id=ids[0] if ids else f"{hashlib.sha256(raw).hexdigest()[:40]}@parley.invalid",
        subject=" ".join(str(mail.get("Subject", "")).split())[:998],
        sender=sender,
        name=" ".join(name.split())[:200],
        recipients=recipients,
        in_reply_to=(message_ids(mail.get("In-Reply-To")) or [""])[0],
        references=message_ids(mail.get("References")),
        text=text,
        html=body_html,
        quoted_html=quoted_html,
        automated=automated(mail, sender),
        attachments=attachments,
    )
