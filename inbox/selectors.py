"""Reads for the inbox pages. Only querysets of ``conversations``; no writes.

Each selector runs a fixed number of queries whatever the number of rows.
"""

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from django.contrib.postgres.expressions import ArraySubquery
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import F, Max, OuterRef, Q, Value
from django.db.models.expressions import RawSQL
from django.http import QueryDict

from conversations.models import (
    Contact,
    Conversation,
    ConversationTag,
)
from conversations.reads import unread_column
from conversations.selectors import status_counts
from conversations.transitions import Status

from . import choices
from .filters import (
    DEFAULTS,
    FILTER_PARAMS,
    SORT_ACTIVITY,
    SORT_WAITING,
    VIEW_ALL,
    VIEW_NEEDS_ME,
    ConversationFilter,
    implied_view,
)
from .forms import BULK_LIMIT

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class BadCursor(ValueError):
    pass


# --- keyset cursors -------------------------------------------------------------
#
# A cursor is the sort key of the last row shown, opaque in the URL (a JSON list,
# base64url without padding; callers check the shape they expect):
# activity: (last_activity_at, id), newest first;
# waiting:  (waiting_since or null, id), oldest waiting first, not waiting last.


def cursor_pack(*values) -> str:
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_unpack(token: str) -> list:
    """The values packed in ``token``; ValueError for anything that is not a cursor."""
    try:
        padded = token + "=" * (-len(token) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (TypeError, UnicodeError, binascii.Error, ValueError) as exc:
        raise ValueError("not a cursor") from exc
    if not isinstance(values, list):
        raise ValueError("not a cursor")
    return values


def encode_cursor(sort: str, row) -> str:
    """``row``: anything with ``pk``, ``last_activity_at`` and ``waiting_since``."""
    moment = row.waiting_since if sort == SORT_WAITING else row.last_activity_at
    return cursor_pack(sort, moment.isoformat() if moment else None, row.pk)


def decode_cursor(value: str, *, sort: str) -> tuple[datetime | None, int]:
    try:
        kind, moment, pk = cursor_unpack(value)
        if kind != sort or not isinstance(pk, int) or isinstance(pk, bool):
            raise BadCursor
        if moment is None:
            if sort != SORT_WAITING:
                raise BadCursor
            return None, pk
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None:
            raise BadCursor
        return parsed, pk
    except (BadCursor, ValueError, TypeError) as exc:
        raise BadCursor(
            "The page link is not valid (it may be from another sort order); "
            "start again from the first page."
        ) from exc


def _order(queryset, sort: str):
    if sort == SORT_WAITING:
        return queryset.order_by(F("waiting_since").asc(nulls_last=True), "id")
    return queryset.order_by("-last_activity_at", "-id")


def _after(queryset, sort: str, moment: datetime | None, pk: int):
    if sort == SORT_WAITING:
        if moment is None:
            return queryset.filter(waiting_since__isnull=True, id__gt=pk)
        return queryset.filter(
            Q(waiting_since__gt=moment)
            | Q(waiting_since=moment, id__gt=pk)
            | Q(waiting_since__isnull=True)
        )
    # The first condition is redundant but gives the index scan its start
    # (last_activity_at <= moment) instead of filtering every newer row.
    return queryset.filter(last_activity_at__lte=moment).filter(
        Q(last_activity_at__lt=moment) | Q(last_activity_at=moment, id__lt=pk)
    )


@dataclass
class InboxPage:
    filterset: ConversationFilter
    errors: list[str]
    rows: list["ListRow"] = field(default_factory=list)
    next_cursor: str | None = None
    total: int | None = None
    # The tab counts, when the total was taken from them (the view reuses them).
    counts: dict[str, int] | None = None
    sort: str = SORT_ACTIVITY
    is_first_page: bool = True
    # The valid, non-default filter parameters: the base of every link and refresh.
    query: QueryDict = field(default_factory=QueryDict)
    # Every tag by id, knowing the rows' tags (inbox.choices).
    tags_by_id: dict = field(default_factory=dict)
    # A search that found nothing here: its matches in other views (``elsewhere``).
    elsewhere: "Elsewhere | None" = None


def _error_messages(form) -> list[str]:
    messages = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else None
        for error in errors:
            messages.append(f"{label}: {error}" if label else str(error))
    return messages


def canonical_query(params: QueryDict, form=None) -> QueryDict:
    """The filter parameters worth keeping in a URL: known, non-empty, not the
    default, and (when a bound form is given) not in error."""
    query = QueryDict(mutable=True)
    bad = set(form.errors) if form is not None else set()
    for name in FILTER_PARAMS:
        if name in bad:
            continue
        values = [v for v in params.getlist(name) if v.strip()]
        if not values or (len(values) == 1 and DEFAULTS.get(name) == values[0]):
            continue
        if name == "view" and values == [implied_view(params)]:
            continue
        query.setlist(name, values)
    return query


def filtered_conversations(*, params: QueryDict, request):
    """The FilterSet bound to ``params`` and its errors (a list of sentences)."""
    filterset = ConversationFilter(params, queryset=Conversation.objects.all(), request=request)
    errors = [] if filterset.is_valid() else _error_messages(filterset.form)
    return filterset, errors


# Filters other than status and archived: with any of them the total is counted
# (up to TOTAL_LIMIT); without, it comes from the tab counts.
COUNTED_FILTERS = ("q", "assignee", "tag", "channel", "active_from", "active_to")
TOTAL_LIMIT = BULK_LIMIT


def _set_total(page: InboxPage, filterset, queryset) -> bool:
    """The number of matching conversations, without scanning the archive: from the
    tab counts when only status and archived filter; else counted, but only up to
    TOTAL_LIMIT (the bulk limit: beyond it "all N matching" could not run anyway, so
    the page shows rows without a number); not at all for a common search term.

    True when the total has to be counted: the rows' query then counts it too (a
    subquery), one round trip fewer."""
    data = filterset.form.cleaned_data
    if (
        data.get("view") == VIEW_NEEDS_ME
        or any(data.get(name) for name in COUNTED_FILTERS)
        or data.get("snoozed") not in ("", "no")
    ):
        return not getattr(filterset, "search_is_broad", False)
    counts = status_counts()
    statuses = data.get("status") or [str(status) for status in Status]
    archived = data.get("archived") or "no"
    total = 0
    if archived in ("no", "any"):
        total += sum(counts[status] for status in statuses)
    if archived in ("yes", "any") and Status.CLOSED in statuses:
        total += counts["archived"]
    page.total, page.counts = total, counts
    return False


def _capped_count(queryset) -> RawSQL | Value:
    """``COUNT(*)`` of at most TOTAL_LIMIT + 1 rows of ``queryset``, as a column of
    another query (an uncorrelated subquery: PostgreSQL runs it once)."""
    try:
        sql, params = queryset.order_by().values("pk")[: TOTAL_LIMIT + 1].query.sql_with_params()
    except EmptyResultSet:  # a filter that can match nothing (a search without matches)
        return Value(0)
    # The SQL is Django's own compilation of the queryset; the values stay parameters.
    return RawSQL(f"SELECT COUNT(*) FROM ({sql}) AS capped", params)  # noqa: S608, S611


class ListRow(NamedTuple):
    """One row of the list as the database gives it (what ``inbox.display.list_rows``
    shows and the cursor needs): plain values, no model instances."""

    pk: int
    status: str
    archived_at: datetime | None
    last_activity_at: datetime
    waiting_since: datetime | None
    snoozed_until: datetime | None
    last_message_preview: str
    contact_id: int
    contact_name: str
    external_id: str
    channel: str
    assignee_first_name: str | None
    assignee_last_name: str | None
    assignee_username: str | None
    tag_ids: list[int]
    # Contact messages the agent has not seen (conversations.reads), capped.
    unread: int = 0

    @property
    def assignee_label(self) -> str:
        """``agent_label`` of the assignee; "" when unassigned."""
        if self.assignee_username is None:
            return ""
        return choices.name_label(
            self.assignee_first_name, self.assignee_last_name, self.assignee_username
        )


ROW_VALUES = (
    "pk",
    "status",
    "archived_at",
    "last_activity_at",
    "waiting_since",
    "snoozed_until",
    "last_message_preview",
    "contact_id",
    "contact__name",
    "contact__external_id",
    "contact__channel",
    "assignee__first_name",
    "assignee__last_name",
    "assignee__username",
    "tag_ids",
    "unread",
)


def with_tag_ids(queryset):
    """The rows' tag ids as an array column instead of a second query for the tags
    (the choices memory holds every tag)."""
    links = ConversationTag.objects.filter(conversation=OuterRef("pk")).values("tag_id")
    return queryset.prefetch_related(None).annotate(tag_ids=ArraySubquery(links))


def attach_tags(rows: list[Conversation], tags_by_id: dict) -> None:
    """``row_tags``: each row's tags (``with_tag_ids``), ordered by name."""
    for row in rows:
        tags = [tags_by_id[pk] for pk in row.tag_ids if pk in tags_by_id]
        row.row_tags = sorted(tags, key=lambda tag: tag.name)


def conversation_list(*, request, params: QueryDict, with_total: bool = True) -> InboxPage:
    """One page of the inbox list for ``params`` (filters, ``cursor``, ``limit``).

    Bad parameters give an empty page with the errors; nothing raises."""
    filterset, errors = filtered_conversations(params=params, request=request)
    sort = filterset.form.cleaned_data.get("sort") or SORT_ACTIVITY
    page = InboxPage(
        filterset=filterset,
        errors=errors,
        sort=sort,
        query=canonical_query(params, filterset.form),
    )

    limit = PAGE_SIZE
    raw_limit = params.get("limit", "").strip()
    if raw_limit:
        # The list asks for as many rows as it shows when it refreshes itself.
        if raw_limit.isdigit() and len(raw_limit) <= 6 and int(raw_limit) >= 1:
            limit = min(max(int(raw_limit), PAGE_SIZE), MAX_PAGE_SIZE)
        else:
            errors.append("Limit: must be a whole number.")

    cursor = None
    raw_cursor = params.get("cursor", "").strip()
    if raw_cursor:
        try:
            cursor = decode_cursor(raw_cursor, sort=sort)
        except BadCursor as exc:
            errors.append(str(exc))
    if errors:
        return page

    queryset = filterset.qs
    count = with_total and cursor is None and _set_total(page, filterset, queryset)
    ordered = _order(queryset, sort)
    if cursor is not None:
        page.is_first_page = False
        ordered = _after(ordered, sort, *cursor)
    if filterset.form.cleaned_data.get("tag"):
        # The walk probes each conversation's tag links and keeps about one in 60:
        # find the page's ids first (an index-only walk), then read those rows,
        # instead of reading every row walked (22-37 ms -> 14 ms for a common tag).
        ids = ordered.values("pk")[: limit + 1]
        ordered = _order(Conversation.objects.filter(pk__in=ids), sort)
    columns = ROW_VALUES
    ordered = with_tag_ids(ordered).annotate(unread=unread_column(_agent_id(request)))
    if count:
        ordered = ordered.annotate(capped_total=_capped_count(queryset))
        columns = (*columns, "capped_total")
    values = list(ordered.values_list(*columns)[: limit + 1])
    if count:
        total = values[0][-1] if values else 0
        page.total = total if total <= TOTAL_LIMIT else None
        values = [row[:-1] for row in values]
    rows = [ListRow._make(row) for row in values]
    if len(rows) > limit:
        rows = rows[:limit]
        page.next_cursor = encode_cursor(sort, rows[-1])
    if not rows and cursor is None and filterset.form.cleaned_data.get("q"):
        page.elsewhere = elsewhere(page.query, request)
    # A tag created a moment ago by another process: the memory reloads once.
    page.tags_by_id = choices.tags_knowing(ids={pk for row in rows for pk in row.tag_ids}).by_id
    page.rows = rows
    return page


ELSEWHERE_CAP = 100


@dataclass
class Elsewhere:
    """Conversations a search finds outside the view, status and archive filters
    (open: outside the status filter or assigned to someone else)."""

    closed: int  # closed, not archived
    archived: int
    open: int  # open, outside the view (assigned to another agent)
    query: QueryDict  # the list that shows them
    capped: bool = False
    resolved: int = 0  # its survey awaited

    @property
    def total(self) -> int:
        return self.closed + self.resolved + self.archived + self.open

    @property
    def parts(self) -> list[str]:
        """ "2 archived", "1 resolved"…: each kind found, in this order."""
        kinds = (
            ("archived", self.archived),
            ("closed", self.closed),
            ("resolved", self.resolved),
            ("open", self.open),
        )
        return [f"{count} {name}" for name, count in kinds if count]


def elsewhere(query: QueryDict, request) -> Elsewhere | None:
    """The matches of a search that found nothing in ``query``'s view, everywhere
    else (at most ELSEWHERE_CAP of them read); None when there are none."""
    wider = query.copy()
    for name in ("view", "status", "archived"):
        wider.pop(name, None)
    wider["view"], wider["archived"] = VIEW_ALL, "any"
    filterset, errors = filtered_conversations(params=wider, request=request)
    if errors:
        return None
    found = list(filterset.qs.order_by().values_list("status", "archived_at")[: ELSEWHERE_CAP + 1])
    if not found:
        return None
    capped, found = len(found) > ELSEWHERE_CAP, found[:ELSEWHERE_CAP]
    archived = sum(1 for _, at in found if at is not None)
    closed = sum(1 for status, at in found if at is None and status == Status.CLOSED)
    resolved = sum(1 for status, at in found if at is None and status == Status.RESOLVED)
    return Elsewhere(
        closed=closed,
        resolved=resolved,
        archived=archived,
        open=len(found) - closed - resolved - archived,
        query=canonical_query(wider),
        capped=capped,
    )


def _agent_id(request) -> int | None:
    user = getattr(request, "user", None)
    return user.pk if user is not None and user.is_authenticated else None


VIEW_COUNT_CAP = 99


class Heads(NamedTuple):
    """What the list page shows above the rows besides the status tabs."""

    version: str  # the heartbeat's fingerprint (``inbox_version``)
    mine: int  # open conversations assigned to the agent, capped (VIEW_COUNT_CAP + 1)
    unassigned: int  # open conversations assigned to nobody, capped
    mentions: int  # the agent's unread mentions in notes, capped
    away: bool = False  # the agent's available/away switch (the top bar)


def inbox_heads(*, agent_id: int | None) -> Heads:
    """``inbox_version``, the Mine and Unassigned counts and the agent's away
    switch in one query (each
    count a walk of ``conv_open_assignee``, at most a hundred entries; snoozed
    conversations are left out, as from every default view)."""
    cap = VIEW_COUNT_CAP + 1
    # Open, as the views list them (OPEN_STATUSES): a Resolved conversation awaits its
    # survey, not an agent. The 'closed' clause is the indexes' predicate, word for word.
    open_rows = (
        "archived_at IS NULL AND status <> 'closed' AND status <> 'resolved'"
        " AND snoozed_until IS NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT (SELECT max(updated_at) FROM conversations_conversation),
                (SELECT count(*) FROM (SELECT 1 FROM conversations_conversation
                    WHERE {open_rows} AND assignee_id = %s LIMIT {cap}) mine),
                (SELECT count(*) FROM (SELECT 1 FROM conversations_conversation
                    WHERE {open_rows} AND assignee_id IS NULL LIMIT {cap}) nobody),
                (SELECT count(*) FROM (SELECT 1 FROM conversations_mention
                    WHERE agent_id = %s AND read_at IS NULL LIMIT {cap}) mentions),
                EXISTS (SELECT 1 FROM conversations_availability
                    WHERE user_id = %s AND is_away)
            """,  # noqa: S608 - constants; the agent is a parameter
            [agent_id or 0] * 3,
        )
        newest, mine, unassigned, mentions, away = cursor.fetchone()
    return Heads(_fingerprint(newest), mine, unassigned, mentions, away)


def _fingerprint(newest) -> str:
    raw = newest.isoformat() if isinstance(newest, datetime) else "empty"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def inbox_version() -> str:
    """A fingerprint of everything the list shows: every service that changes a
    conversation (messages, status, assignment, tags) bumps its ``updated_at``, and
    conversations are never deleted, so the newest ``updated_at`` is enough. One
    index lookup (``conv_updated_at``), whatever the size of the inbox."""
    return _fingerprint(Conversation.objects.aggregate(at=Max("updated_at"))["at"])


# --- the thread -------------------------------------------------------------------
#
# The pane shows the newest THREAD_PAGE entries (messages and status changes) and a
# link to the ones before; 5 or 5,000 messages cost the same. An entry's place in
# the thread is (moment, kind, id): a status change sorts before a message of the
# same moment (a reply moves the status, then is the message).

THREAD_PAGE = 50
# A refresh keeps every entry the reader has loaded, up to this many.
THREAD_MAX = 1000
_KIND_RANK = {"status": 0, "message": 1, "activity": 2}


# The thread's rows carry their author's (actor's) id, not a join to the users:
# PostgreSQL hashed the whole user table for that join (0.4 ms of a 0.7 ms query at
# 2,000 users); the labels come from inbox.choices.user_labels.


class MessageRow(NamedTuple):
    pk: int
    created_at: datetime
    direction: str
    sender_kind: str
    text: str
    author_id: int | None
    # Its channel's side (connectors): the delivery, WhatsApp receipts and media.
    delivery_status: str | None = None
    delivery_error: str | None = None
    receipt: int | None = None
    receipt_error: str | None = None
    media_id: int | None = None
    media_type: str | None = None


# MessageRow's columns: the message, and its channel's side (one LEFT JOIN each).
_MESSAGE_COLUMNS = """m.id, m.created_at, m.direction, m.sender_kind, m.text, m.author_id,
    d.status, d.last_error, w.receipt, w.error, CASE WHEN w.media <> '' THEN w.id END,
    w.media_type"""


class ChangeRow(NamedTuple):
    pk: int
    at: datetime
    event: str
    from_status: str
    to_status: str
    source: str
    note: str
    actor_id: int | None


class ActivityRow(NamedTuple):
    pk: int
    created_at: datetime
    kind: str
    source: str
    data: dict
    actor_id: int | None


@dataclass(frozen=True)
class ThreadEntry:
    at: datetime
    kind: str  # "message", "status" or "activity"
    item: MessageRow | ChangeRow | ActivityRow

    @property
    def key(self) -> tuple[datetime, int, int]:
        return (self.at, _KIND_RANK[self.kind], self.item.pk)


@dataclass
class Thread:
    entries: list[ThreadEntry]  # oldest first
    # The cursor of the oldest entry shown, when there are older ones.
    earlier: str | None = None
    # The cursor of the oldest entry shown (what a refresh asks to keep).
    oldest: str | None = None
    # Not the newest entries (an "earlier" page opened without htmx).
    is_older_page: bool = False


def thread_cursor(entry: ThreadEntry) -> str:
    at, rank, pk = entry.key
    return cursor_pack("thread", at.isoformat(), rank, pk)


def decode_thread_cursor(value: str) -> tuple[datetime, int, int]:
    try:
        kind, moment, rank, pk = cursor_unpack(value)
        if kind != "thread" or rank not in (0, 1, 2) or isinstance(rank, bool):
            raise BadCursor
        if not isinstance(pk, int) or isinstance(pk, bool) or not isinstance(moment, str):
            raise BadCursor
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None:
            raise BadCursor
        return parsed, rank, pk
    except (BadCursor, ValueError, TypeError) as exc:
        raise BadCursor("The link to earlier messages is not valid.") from exc


# The thread's three kinds of entries: table, alias, column of moments, rank.
THREAD_TABLES = (
    ("conversations_message", "m", "created_at", _KIND_RANK["message"]),
    ("conversations_activity", "a", "created_at", _KIND_RANK["activity"]),
    ("conversations_statuschange", "s", "at", _KIND_RANK["status"]),
)


def _placed(alias: str, column: str, rank: int, key: tuple[datetime, int, int], *, before: bool):
    """SQL (and its parameters) for the entries of one kind (``rank``; the table
    ``alias``, its ``column`` of moments and ``id``) placed before ``key``, or
    (``before=False``) at ``key`` or after. The plain bound on the moment bounds the
    index range scan."""
    at, key_rank, pk = key
    moment = f"{alias}.{column}"
    if rank == key_rank:
        compare = "<" if before else ">="
        bound = "<=" if before else ">="
        return f"{moment} {bound} %s AND ({moment}, {alias}.id) {compare} (%s, %s)", [at, at, pk]
    if before:
        return (f"{moment} <= %s" if rank < key_rank else f"{moment} < %s"), [at]
    return (f"{moment} >= %s" if rank > key_rank else f"{moment} > %s"), [at]


def conversation_thread(
    *, conversation: Conversation, before: str | None = None, since: str | None = None
) -> Thread:
    """A page of a conversation's timeline, oldest first, in two queries whatever its
    length: the newest THREAD_PAGE entries; with ``before`` (a cursor), the
    THREAD_PAGE entries before it; with ``since``, every entry from it on (at most
    THREAD_MAX, the newest). A bad cursor raises ``BadCursor``."""
    size, key, placed_before = THREAD_PAGE, None, True
    if before:
        key = decode_thread_cursor(before)
    elif since:
        key, placed_before, size = decode_thread_cursor(since), False, THREAD_MAX
    # Hand-written: the ORM compiled these two statements in ~2.5 ms of the pane's 9.
    # Plain rows, not model instances (100 of them, and their authors, per pane).
    where = {alias: ("", []) for _, alias, _, _ in THREAD_TABLES}
    if key is not None:
        for _, alias, column, rank in THREAD_TABLES:
            sql, params = _placed(alias, column, rank, key, before=placed_before)
            where[alias] = (f" AND {sql}", params)
    entries = []
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT {_MESSAGE_COLUMNS} FROM conversations_message m
            LEFT JOIN connectors_delivery d ON d.message_id = m.id
            LEFT JOIN connectors_whatsappmessage w ON w.message_id = m.id
            WHERE m.conversation_id = %s{where["m"][0]}
            ORDER BY m.created_at DESC, m.id DESC LIMIT %s""",  # noqa: S608 - constants
            [conversation.pk, *where["m"][1], size + 1],
        )
        entries += [ThreadEntry(row[1], "message", MessageRow._make(row)) for row in cursor]
        # Status changes and activities in one statement: each kind's newest.
        cursor.execute(
            f"""(SELECT 2, a.id, a.created_at, a.kind, '', '', a.source, '', a.data,
                a.actor_id FROM conversations_activity a
            WHERE a.conversation_id = %s{where["a"][0]}
            ORDER BY a.created_at DESC, a.id DESC LIMIT %s)
            UNION ALL
            (SELECT 0, s.id, s.at, s.event, s.from_status, s.to_status, s.source, s.note,
                NULL, s.actor_id FROM conversations_statuschange s
            WHERE s.conversation_id = %s{where["s"][0]}
            ORDER BY s.at DESC, s.id DESC LIMIT %s)""",  # noqa: S608 - constants
            [
                conversation.pk,
                *where["a"][1],
                size + 1,
                conversation.pk,
                *where["s"][1],
                size + 1,
            ],
        )
        for rank, pk, at, kind, from_status, to_status, source, note, data, actor in cursor:
            if rank == _KIND_RANK["activity"]:
                item = ActivityRow(pk, at, kind, source, json.loads(data), actor)
                entries.append(ThreadEntry(at, "activity", item))
            else:
                row = ChangeRow(pk, at, kind, from_status, to_status, source, note, actor)
                entries.append(ThreadEntry(at, "status", row))
    entries.sort(key=lambda entry: entry.key, reverse=True)
    shown = entries[:size]
    shown.reverse()
    thread = Thread(entries=shown, is_older_page=bool(before))
    if not shown:
        if since:  # nothing from the cursor on (it does not belong here): the newest page
            return conversation_thread(conversation=conversation)
        return thread
    thread.oldest = thread_cursor(shown[0])
    if len(entries) > size:
        thread.earlier = thread.oldest
    elif since:
        # Everything from the cursor on is shown; is there anything before it?
        key = shown[0].key
        exists, params = [], []
        for table, alias, column, rank in THREAD_TABLES:
            sql, bound = _placed(alias, column, rank, key, before=True)
            exists.append(
                f"EXISTS (SELECT 1 FROM {table} {alias} WHERE {alias}.conversation_id = %s AND {sql})"  # noqa: S608, E501 - constants
            )
            params += [conversation.pk, *bound]
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {' OR '.join(exists)}", params)  # noqa: S608 - constants
            (older,) = cursor.fetchone()
        if older:
            thread.earlier = thread.oldest
    return thread


# --- the contact search -----------------------------------------------------------


@dataclass
class ContactPage:
    contacts: list
    next_cursor: str | None = None
    error: str = ""


CONTACT_PAGE_SIZE = 50


def contact_search(*, term: str, cursor: str = "") -> ContactPage:
    """Contacts matching ``term`` (``Contact.objects.matching``: name words in any
    order, external id, part of a phone number), or every contact; newest first,
    keyset-paginated by id."""
    contacts = Contact.objects.matching(term) if term.strip() else Contact.objects.all()
    if cursor:
        try:
            kind, last = cursor_unpack(cursor)
            if kind != "contacts" or not isinstance(last, int) or isinstance(last, bool):
                raise BadCursor
        except (BadCursor, ValueError, TypeError):
            return ContactPage([], error="The link to more contacts is not valid.")
        contacts = contacts.filter(pk__lt=last)
    limit = CONTACT_PAGE_SIZE
    rows = list(contacts.order_by("-pk")[: limit + 1])
    page = ContactPage(rows[:limit])
    if len(rows) > limit:
        page.next_cursor = cursor_pack("contacts", rows[limit - 1].pk)
    return page
