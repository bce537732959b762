"""What the inbox templates show, prepared in Python once per row or entry.

Django's template engine costs about a microsecond per variable and much more per
``{% url %}`` or ``|date``; a list of 50 rows or a thread of 50 entries paid that
dozens of times each (docs/performance.md). Here the URLs are reversed once per
page and each date is formatted once, into plain dicts, which the templates read
with one dictionary lookup per value. The templates still escape every value.
"""

from datetime import datetime
from html import escape

from django.template.defaultfilters import linebreaksbr
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import MONTHS_3
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from conversations.models import Conversation, SenderKind, Source
from conversations.transitions import STATUS_LABELS

from .filters import agent_label

_PK_MARKER = 987654321


def url_maker(name: str):
    """``pk -> reverse(name, args=[pk])``, reversing only once."""
    url = reverse(name, args=[_PK_MARKER])
    head, tail = url.split(str(_PK_MARKER), 1)
    return lambda pk: f"{head}{pk}{tail}"


def agent_options(agents, *, selected: int | None = None, me: int | None = None) -> SafeString:
    """``<option>``s of the agents ((id, label) pairs), the ``selected`` one marked
    and ``me`` labelled "(me)"; escaped here (one string for 100 agents, not 100
    loops of template variables)."""
    options = []
    for pk, name in agents:
        label = escape(name)
        if pk == me:
            label += " (me)"
        marked = " selected" if pk == selected else ""
        options.append(f'<option value="{pk}"{marked}>{label}</option>')
    return mark_safe("".join(options))  # noqa: S308 (the labels are escaped)


class Clock:
    """Formats moments for one page: the time zone, "now" and the month names are
    looked up once, not per date (``|date`` re-parses its format and looks up the
    zone and the translations at every call)."""

    def __init__(self, now: datetime | None = None):
        self.zone = timezone.get_current_timezone()
        self.now = now or timezone.now()
        self.year = self.now.astimezone(self.zone).year
        # ``|date:"M"``: the month's three letters, translated, titled.
        self.months = ["", *(str(MONTHS_3[month]).title() for month in range(1, 13))]

    def local(self, value: datetime) -> datetime:
        return value.astimezone(self.zone)

    def day_month(self, local: datetime) -> str:
        """``|date:"j M"``."""
        return f"{local.day} {self.months[local.month]}"

    def short(self, value: datetime) -> tuple[str, str]:
        """``|date:"c"`` and ``|date:"j M, H:i"``."""
        local = self.local(value)
        return local.isoformat(), f"{self.day_month(local)}, {local.hour:02d}:{local.minute:02d}"

    def long(self, value: datetime) -> tuple[str, str]:
        """``|date:"c"`` and ``|date:"j M Y, H:i"``."""
        local = self.local(value)
        when = f"{self.day_month(local)} {local.year}, {local.hour:02d}:{local.minute:02d}"
        return local.isoformat(), when

    def ago(self, value: datetime | None) -> str:
        """A short relative time: "now", "5 min", "3 h", "2 d", then the date."""
        if not value:
            return ""
        seconds = (self.now - value).total_seconds()
        if seconds < 60:
            return "now"
        if seconds < 3600:
            return f"{int(seconds // 60)} min"
        if seconds < 86400:
            return f"{int(seconds // 3600)} h"
        if seconds < 7 * 86400:
            return f"{int(seconds // 86400)} d"
        local = self.local(value)
        if local.year == self.year:
            return f"{local.day} {local:%b}"
        return f"{local.day} {local:%b %Y}"


def relative_time(value: datetime | None) -> str:
    """A short relative time: "now", "5 min", "3 h", "2 d", then the date."""
    return Clock().ago(value) if value else ""


def status_badge(conversation: Conversation) -> SafeString:
    label = STATUS_LABELS.get(conversation.status, conversation.status)
    badge = format_html(
        '<span class="badge badge-{}">{}</span>', conversation.status.replace("_", "-"), label
    )
    if conversation.archived_at:
        badge += mark_safe(' <span class="badge badge-archived">Archived</span>')  # noqa: S308
    return badge


# One row of the list. Every value is escaped before it goes in (``_row``); the
# template loops over the finished rows (Django's engine spent about 4 ms on the
# 50 rows' 850 variables, this about 0.3 ms).
ROW_HTML = (
    '<li class="conv-row" data-id="{pk}">\n'
    '  <label class="row-check-wrap"><input type="checkbox" class="row-check" name="ids" '
    'value="{pk}"><span class="sr-only">Select the conversation with {name}</span></label>\n'
    """  <a class="row-link" href="{url}"
     hx-get="{url}" hx-target="#conversation-pane"
     hx-swap="outerHTML" hx-push-url="true" hx-sync="#conversation-pane:replace">
    <span class="row-top">
      <span class="row-name">{name}</span>
      <time class="row-time" datetime="{iso}" title="{title}">{ago}</time>
    </span>
    <span class="row-preview">{preview}</span>
    <span class="row-meta">
      {badge}
      <span class="channel">{channel}</span>
      {waiting}{tags}
      <span class="row-assignee">{assignee}</span>
    </span>
  </a>
</li>
"""
)
NO_PREVIEW = "<em>No messages yet</em>"
UNASSIGNED = '<span class="muted">Unassigned</span>'


def list_rows(rows: list[Conversation], list_suffix: str) -> list[SafeString]:
    """The list's rows as HTML (``row_tags`` set by the selector)."""
    pane_url = url_maker("inbox:pane")
    clock = Clock()
    badges: dict[tuple[str, bool], SafeString] = {}
    tags_html: dict[int, str] = {}
    items = []
    for c in rows:
        contact, assignee = c.contact, c.assignee
        iso, title = clock.long(c.last_activity_at)
        badge_key = (c.status, c.archived_at is not None)
        if badge_key not in badges:
            badges[badge_key] = status_badge(c)
        for tag in c.row_tags:
            if tag.pk not in tags_html:
                tags_html[tag.pk] = (
                    f'<span class="tag" style="--tag: {escape(tag.colour)}">'
                    f"{escape(tag.name)}</span>"
                )
        waiting = ""
        if c.waiting_since:
            since = escape(clock.short(c.waiting_since)[1])
            waiting = (
                f'<span class="waiting" title="Waiting for an agent since {since}">'
                f"waiting {escape(clock.ago(c.waiting_since))}</span>\n      "
            )
        if assignee:
            name = agent_label(assignee)
            initial = escape(name[:1].upper())
            assigned = (
                f'<span class="avatar avatar-xs" aria-hidden="true">{initial}</span>{escape(name)}'
            )
        else:
            assigned = UNASSIGNED
        preview = c.last_message_preview
        html = ROW_HTML.format(
            pk=c.pk,
            name=escape(contact.display_name),
            url=escape(pane_url(c.pk) + list_suffix),
            iso=iso,
            title=escape(title),
            ago=escape(clock.ago(c.last_activity_at)),
            preview=escape(preview) if preview else NO_PREVIEW,
            badge=badges[badge_key],
            channel=escape(contact.channel),
            waiting=waiting,
            tags="".join(tags_html[tag.pk] for tag in c.row_tags),
            assignee=assigned,
        )
        items.append(mark_safe(html))  # noqa: S308 (every value above is escaped)
    return items


# --- the thread ---------------------------------------------------------------------


def _sender(message, contact_name: str) -> str:
    if message.sender_kind == SenderKind.CONTACT:
        return contact_name
    if message.sender_kind == SenderKind.AGENT:
        return agent_label(message.author) if message.author else "An agent"
    return "Flow" if message.sender_kind == SenderKind.FLOW else "Broadcast"


def _actor(change) -> str:
    if change.actor is not None:
        return agent_label(change.actor)
    if change.source == Source.CONTACT:
        return "the contact"
    return Source(change.source).label if change.source in Source.values else change.source


def thread_entries(entries, contact_name: str) -> list[dict]:
    """A thread's entries (``inbox.selectors.ThreadEntry``), oldest first."""
    clock = Clock()
    items = []
    for entry in entries:
        if entry.kind == "message":
            m = entry.item
            iso, when = clock.short(m.created_at)
            items.append(
                {
                    "message": True,
                    "direction": m.direction,
                    "sender_kind": m.sender_kind,
                    "author": _sender(m, contact_name),
                    "iso": iso,
                    "when": when,
                    "text": linebreaksbr(m.text, autoescape=True),
                }
            )
        else:
            change = entry.item
            iso, when = clock.short(change.at)
            if change.from_status and change.from_status != change.to_status:
                transition = (
                    f"{change.get_from_status_display()} → {change.get_to_status_display()}"
                )
            elif not change.from_status:
                transition = change.get_to_status_display()
            else:
                transition = ""
            items.append(
                {
                    "message": False,
                    "event": change.event,
                    "label": change.get_event_display(),
                    "transition": transition,
                    "actor": _actor(change),
                    "note": change.note,
                    "iso": iso,
                    "when": when,
                }
            )
    return items
