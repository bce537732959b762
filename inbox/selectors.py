"""Reads for the inbox pages. Only querysets of ``conversations``; no writes.

Each selector runs a fixed number of queries whatever the number of rows.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import F, Max, Q
from django.http import QueryDict

from conversations.cursors import cursor_pack, cursor_unpack
from conversations.models import Conversation
from conversations.selectors import status_counts
from conversations.transitions import Status

from .filters import (
    DEFAULTS,
    FILTER_PARAMS,
    SORT_ACTIVITY,
    SORT_WAITING,
    ConversationFilter,
)
from .forms import BULK_LIMIT

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class BadCursor(ValueError):
    pass


# --- keyset cursors -------------------------------------------------------------
#
# A cursor is the sort key of the last row shown, opaque in the URL:
# activity: (last_activity_at, id), newest first;
# waiting:  (waiting_since or null, id), oldest waiting first, not waiting last.


def encode_cursor(sort: str, row: Conversation) -> str:
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


# --- the list -------------------------------------------------------------------


@dataclass
class InboxPage:
    filterset: ConversationFilter
    errors: list[str]
    rows: list[Conversation] = field(default_factory=list)
    next_cursor: str | None = None
    total: int | None = None
    # The tab counts, when the total was taken from them (the view reuses them).
    counts: dict[str, int] | None = None
    sort: str = SORT_ACTIVITY
    is_first_page: bool = True
    # The valid, non-default filter parameters: the base of every link and refresh.
    query: QueryDict = field(default_factory=QueryDict)

    @property
    def is_valid(self) -> bool:
        return not self.errors


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
        query.setlist(name, values)
    return query


def filtered_conversations(*, params: QueryDict, request):
    """The FilterSet bound to ``params`` and its errors (a list of sentences)."""
    filterset = ConversationFilter(
        params, queryset=Conversation.objects.for_inbox(), request=request
    )
    errors = [] if filterset.is_valid() else _error_messages(filterset.form)
    return filterset, errors


# Filters other than status and archived: with any of them the total is counted
# (up to TOTAL_LIMIT); without, it comes from the tab counts.
COUNTED_FILTERS = ("q", "assignee", "tag", "channel", "active_from", "active_to")
TOTAL_LIMIT = BULK_LIMIT


def _set_total(page: InboxPage, filterset, queryset) -> None:
    """The number of matching conversations, without scanning the archive: from the
    tab counts when only status and archived filter; else counted, but only up to
    TOTAL_LIMIT (the bulk limit: beyond it "all N matching" could not run anyway, so
    the page shows rows without a number); not at all for a common search term."""
    data = filterset.form.cleaned_data
    if any(data.get(name) for name in COUNTED_FILTERS):
        if getattr(filterset, "search_is_broad", False):
            return
        total = queryset[: TOTAL_LIMIT + 1].count()
        page.total = total if total <= TOTAL_LIMIT else None
        return
    counts = status_counts()
    statuses = data.get("status") or [str(status) for status in Status]
    archived = data.get("archived") or "no"
    total = 0
    if archived in ("no", "any"):
        total += sum(counts[status] for status in statuses)
    if archived in ("yes", "any") and Status.CLOSED in statuses:
        total += counts["archived"]
    page.total, page.counts = total, counts


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
    if with_total and cursor is None:
        _set_total(page, filterset, queryset)
    ordered = _order(queryset, sort)
    if cursor is not None:
        page.is_first_page = False
        ordered = _after(ordered, sort, *cursor)
    rows = list(ordered[: limit + 1])
    if len(rows) > limit:
        rows = rows[:limit]
        page.next_cursor = encode_cursor(sort, rows[-1])
    page.rows = rows
    return page


def inbox_version() -> str:
    """A fingerprint of everything the list shows: every service that changes a
    conversation (messages, status, assignment, tags) bumps its ``updated_at``, and
    conversations are never deleted, so the newest ``updated_at`` is enough. One
    index lookup (``conv_updated_at``), whatever the size of the inbox."""
    newest = Conversation.objects.aggregate(at=Max("updated_at"))["at"]
    raw = newest.isoformat() if isinstance(newest, datetime) else "empty"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]
