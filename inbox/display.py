"""What the inbox templates show, prepared in Python once per row or entry.

Django's template engine costs about a microsecond per variable and much more per
``{% url %}`` or ``|date``; a list of 50 rows or a thread of 50 entries paid that
dozens of times each (docs/performance.md). Here the URLs are reversed once per
page and each date is formatted once, into plain values. The hot fragments (the
list's rows, the agents' options, the status badges) are Jinja2 templates over
those values (``templates/jinja2/inbox/``, autoescaped); the rest stays in Django
templates, which include the rendered fragment. No markup is written here.
"""

import functools
from datetime import datetime
from typing import NamedTuple

from django.template.defaultfilters import linebreaksbr
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import MONTHS_3
from markupsafe import Markup

from connectors.models import DeliveryStatus
from connectors.whatsapp.models import Receipt
from conversations import hooks
from conversations.activity import MENTION
from conversations.models import (
    Activity,
    Conversation,
    Message,
    SenderKind,
    Source,
    StatusChange,
    contact_label,
)
from conversations.reads import UNREAD_CAP
from conversations.transitions import STATUS_LABELS

from .choices import user_labels
from .jinja2 import fragment_macro, render_fragment
from .selectors import ChangeRow, ListRow, MessageRow

_PK_MARKER = 987654321


@functools.cache
def url_maker(name: str):
    """``pk -> reverse(name, args=[pk])``, reversed once per process (the URLconf
    and its prefix do not change while it runs)."""
    url = reverse(name, args=[_PK_MARKER])
    head, tail = url.split(str(_PK_MARKER), 1)
    return lambda pk: f"{head}{pk}{tail}"


@functools.cache
def path(name: str) -> str:
    """``reverse(name)`` of a URL without arguments, once per process."""
    return reverse(name)


# (id(agents), selected, me) -> (agents, their options). The agents tuple comes from
# the choices memory and is replaced, never changed, when it reloads: holding it here
# keeps its id from being reused while the entry lives.
_options: dict[tuple, tuple] = {}
OPTIONS_KEPT = 500


def agent_options(agents, *, selected: int | None = None, me: int | None = None) -> Markup:
    """``<option>``s of the agents ((id, label) pairs), the ``selected`` one marked
    and ``me`` labelled "(me)": 100 agents' options are rendered once per set of
    agents and (selected, me), not on every page."""
    key = (id(agents), selected, me)
    held = _options.get(key)
    if held is not None and held[0] is agents:
        return held[1]
    options = fragment_macro("agent_options")(agents, selected, me)
    if len(_options) >= OPTIONS_KEPT:
        _options.clear()
    _options[key] = (agents, options)
    return options


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


def badge(status: str, archived: bool) -> Markup:
    """The status badge (and "Archived"): ``macros.html``'s ``status_badge``."""
    return fragment_macro("status_badge")(status, STATUS_LABELS.get(status, status), archived)


def status_badge(conversation: Conversation) -> Markup:
    """The status badge of a conversation, for the Django templates."""
    return badge(conversation.status, conversation.archived_at is not None)


class RowView(NamedTuple):
    """One row of the list, ready to show: every value plain text (the template
    escapes it)."""

    pk: int
    url: str
    name: str
    iso: str
    title: str
    ago: str
    preview: str
    badge: Markup  # the status badge, rendered once per (status, archived) per page
    channel: str
    waiting_since: str  # "" when nobody waits
    waiting_ago: str
    snoozed_until: str  # "" unless snoozed: when it comes back
    tags: tuple  # inbox.choices.TagChoice, by name
    assignee: str  # "" when unassigned
    initial: str  # the assignee's, for the avatar
    unread: str  # "" when read; "100+" past the cap


# A row's HTML by everything it shows (its RowView): the list refreshes every second
# or so on every agent's screen while most of its rows stay as they were; a row is
# drawn again only when something on it changed ("5 min" becoming "6 min" included).
_row_html: dict["RowView", Markup] = {}
ROWS_KEPT = 5000


def list_rows(rows: list[ListRow], list_suffix: str, tags_by_id: dict) -> Markup:
    """The list's rows (``inbox/rows.html``, Jinja2) from the selector's plain rows:
    the pane URL reversed once, the dates formatted by one clock, each row drawn
    once for as long as it looks the same."""
    pane_url = url_maker("inbox:pane")
    clock = Clock()
    badges: dict[tuple[str, bool], Markup] = {}
    views = []
    for row in rows:
        iso, title = clock.long(row.last_activity_at)
        waiting = row.waiting_since
        row_tags = tuple(
            sorted(
                (tags_by_id[pk] for pk in row.tag_ids if pk in tags_by_id),
                key=lambda tag: tag.name,
            )
        )
        badge_key = (row.status, row.archived_at is not None)
        if badge_key not in badges:
            badges[badge_key] = badge(*badge_key)
        assignee = row.assignee_label
        views.append(
            RowView(
                pk=row.pk,
                url=f"{pane_url(row.pk)}{list_suffix}",
                name=contact_label(row.contact_name, row.external_id, row.channel, row.contact_id),
                iso=iso,
                title=title,
                ago=clock.ago(row.last_activity_at),
                preview=row.last_message_preview,
                badge=badges[badge_key],
                channel=row.channel,
                waiting_since=clock.short(waiting)[1] if waiting else "",
                waiting_ago=clock.ago(waiting) if waiting else "",
                snoozed_until=clock.short(row.snoozed_until)[1] if row.snoozed_until else "",
                tags=row_tags,
                assignee=assignee,
                initial=assignee[:1].upper(),
                unread=(
                    ""
                    if not row.unread
                    else f"{UNREAD_CAP}+"
                    if row.unread > UNREAD_CAP
                    else str(row.unread)
                ),
            )
        )
    drawn = []
    for view in views:
        html = _row_html.get(view)
        if html is None:
            html = fragment_macro("row_html", "inbox/rows.html")(view)
            if len(_row_html) >= ROWS_KEPT:
                _row_html.clear()
            _row_html[view] = html
        drawn.append(html)
    return Markup("").join(drawn)


EVENT_LABELS = dict(StatusChange._meta.get_field("event").flatchoices)
SOURCE_LABELS = dict(Source.choices)
ACTIVITY_LABELS = dict(Activity.Kind.choices)


def _sender(message: MessageRow, contact_name: str, labels: dict[int, str]) -> str:
    if message.sender_kind == SenderKind.CONTACT:
        return contact_name
    if message.sender_kind == SenderKind.AGENT:
        return labels.get(message.author_id, "An agent")
    return SenderKind(message.sender_kind).label


def _actor(change: ChangeRow, labels: dict[int, str]) -> str:
    if change.actor_id is not None and change.actor_id in labels:
        return labels[change.actor_id]
    if change.source == Source.CONTACT:
        return "the contact"
    return SOURCE_LABELS.get(change.source, change.source)


class MessageView(NamedTuple):
    direction: str
    sender_kind: str
    author: str
    iso: str
    when: str
    text: str  # markup: escaped, line breaks as <br> (Django's linebreaksbr)
    message: bool = True
    activity: bool = False
    ticks: str = ""  # the delivery state, short ("✓✓") …
    state: str = ""  # … and in words, with its error
    media_url: str = ""
    media_image: bool = False


RECEIPT_TICKS = {
    Receipt.SENT: ("✓", "Sent"),
    Receipt.DELIVERED: ("✓✓", "Delivered"),
    Receipt.READ: ("✓✓", "Read"),
}
DELIVERY_STATES = {
    DeliveryStatus.PENDING: ("…", "Sending"),
    DeliveryStatus.HELD: ("…", "Held: the channel is paused"),
    DeliveryStatus.FAILED: ("!", "Not sent"),
}


def _delivery(m: MessageRow) -> tuple[str, str]:
    """The ticks and words for an outbound message's delivery ("" when none)."""
    if m.receipt == Receipt.FAILED:
        return "!", f"Failed: {m.receipt_error or 'WhatsApp could not deliver it.'}"
    if m.receipt in RECEIPT_TICKS:
        return RECEIPT_TICKS[m.receipt]
    if m.delivery_status in DELIVERY_STATES:
        ticks, words = DELIVERY_STATES[m.delivery_status]
        return ticks, f"{words}: {m.delivery_error}" if m.delivery_error else words
    return "", ""


class EventView(NamedTuple):
    event: str
    label: str
    transition: str
    actor: str
    note: str
    iso: str
    when: str
    message: bool = False
    activity: bool = False


class ActivityView(NamedTuple):
    """An assignment change, a tag added or removed, or a private note (``text``)."""

    kind: str
    label: str
    detail: str
    actor: str
    iso: str
    when: str
    text: Markup | str = ""
    message: bool = False
    activity: bool = True


def note_html(text: str) -> Markup:
    """A note's text: escaped, line breaks kept, ``@name`` mentions marked."""
    html = linebreaksbr(text, autoescape=True)
    return Markup(MENTION.sub(r'<span class="mention">@\1</span>', html))  # noqa: S704


def _activity_view(item, labels: dict[int, str], clock: Clock) -> ActivityView:
    data = item.data or {}
    actor = labels.get(item.actor_id) if item.actor_id else None
    actor = actor or (
        "the contact"
        if item.source == Source.CONTACT
        else SOURCE_LABELS.get(item.source, item.source)
    )
    if item.kind == Activity.Kind.ASSIGNED:

        def who(pk):
            return labels.get(pk, "an agent") if pk else "nobody"

        detail = f"{who(data.get('from'))} → {who(data.get('to'))}"
    else:
        detail = str(data.get("tag", ""))
    iso, when = clock.short(item.created_at)
    is_note = item.kind == Activity.Kind.NOTE
    return ActivityView(
        kind=item.kind,
        label="Private note" if is_note else ACTIVITY_LABELS.get(item.kind, item.kind),
        detail="" if is_note else detail,
        actor=actor,
        iso=iso,
        when=when,
        text=note_html(str(data.get("text", ""))) if is_note else "",
    )


def thread_html(thread, contact_name: str, earlier_url: str, channel: str = "") -> Markup:
    """The thread's entries (``inbox/thread.html``, Jinja2), oldest first, with the
    "Show earlier messages" link when there are older ones; messages whose channel
    shows them its own way (``hooks.message_bodies``) with that markup."""
    clock = Clock()
    bodies = {}
    message_ids = [entry.item.pk for entry in thread.entries if entry.kind == "message"]
    if message_ids:
        for _, shown in hooks.message_bodies.send(
            sender=Message, channel=channel, message_ids=message_ids
        ):
            bodies.update(shown)
    people = [
        entry.item.author_id if entry.kind == "message" else entry.item.actor_id
        for entry in thread.entries
    ]
    for entry in thread.entries:
        if entry.kind == "activity" and entry.item.kind == Activity.Kind.ASSIGNED:
            people += [entry.item.data.get("from"), entry.item.data.get("to")]
    labels = user_labels(pk for pk in people if pk is not None)
    views = []
    for entry in thread.entries:
        if entry.kind == "activity":
            views.append(_activity_view(entry.item, labels, clock))
        elif entry.kind == "message":
            m = entry.item
            iso, when = clock.short(m.created_at)
            ticks, state = _delivery(m)
            views.append(
                MessageView(
                    ticks=ticks,
                    state=state,
                    media_url=reverse("whatsapp:media", args=[m.media_id]) if m.media_id else "",
                    media_image=bool(m.media_type and m.media_type.startswith("image/")),
                    direction=m.direction,
                    sender_kind=m.sender_kind,
                    author=_sender(m, contact_name, labels),
                    iso=iso,
                    when=when,
                    text=bodies.get(m.pk) or linebreaksbr(m.text, autoescape=True),
                )
            )
        else:
            change = entry.item
            iso, when = clock.short(change.at)
            if change.from_status and change.from_status != change.to_status:
                transition = (
                    f"{STATUS_LABELS.get(change.from_status, change.from_status)} → "
                    f"{STATUS_LABELS.get(change.to_status, change.to_status)}"
                )
            elif not change.from_status:
                transition = STATUS_LABELS.get(change.to_status, change.to_status)
            else:
                transition = ""
            views.append(
                EventView(
                    event=change.event,
                    label=EVENT_LABELS.get(change.event, change.event),
                    transition=transition,
                    actor=_actor(change, labels),
                    note=change.note,
                    iso=iso,
                    when=when,
                )
            )
    return render_fragment(
        "inbox/thread.html", entries=views, oldest=thread.oldest or "", earlier_url=earlier_url
    )
