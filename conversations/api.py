"""The conversations router of the integration API (PRODUCT.md §9).

Every write goes through ``services``, so the API refuses exactly what the inbox
refuses; refusals are raised as ``ParleyError`` and shaped by the API's one error
handler (config/api.py), which also owns the bearer auth.
"""

from datetime import date, datetime, time, timedelta

from django.db.models import Exists, OuterRef, Prefetch, Q
from django.http import Http404
from django.utils import timezone
from ninja import Query, Router
from ninja.responses import Status as Respond

from . import services
from .cursors import cursor_pack, cursor_unpack
from .exceptions import InvalidInput
from .models import Contact, Conversation, Message, Source, StatusChange, Tag
from .schemas import (
    ContactCreatedOut,
    ContactIn,
    ConversationDetailOut,
    ConversationFilters,
    ConversationOut,
    ConversationPageOut,
    ErrorOut,
    InboundIn,
    InboundOut,
    ReplyIn,
    ReplyOut,
    TagIn,
    TagsOut,
)
from .transitions import STATUS_LABELS, Status

router = Router(tags=["conversations"])

ERRORS = {401: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}
ARCHIVED_CHOICES = ("no", "yes", "any")


# --- serialisation ------------------------------------------------------------------


def _contact(contact: Contact) -> dict:
    return {
        "id": contact.pk,
        "channel": contact.channel,
        "external_id": contact.external_id,
        "name": contact.name,
        "attributes": contact.attributes,
        "created_at": contact.created_at,
    }


def _conversation(conversation: Conversation) -> dict:
    return {
        "id": conversation.pk,
        "status": conversation.status,
        "status_label": STATUS_LABELS[Status(conversation.status)],
        "archived": conversation.is_archived,
        "contact": _contact(conversation.contact),
        "assignee": conversation.assignee.get_username() if conversation.assignee else None,
        "tags": [{"name": t.name, "colour": t.colour} for t in conversation.tags.all()],
        "last_message_preview": conversation.last_message_preview,
        "last_activity_at": conversation.last_activity_at,
        "waiting_since": conversation.waiting_since,
        "created_at": conversation.created_at,
        "closed_at": conversation.closed_at,
        "archived_at": conversation.archived_at,
    }


def _message(message: Message) -> dict:
    return {
        "id": message.pk,
        "direction": message.direction,
        "sender_kind": message.sender_kind,
        "author": message.author.get_username() if message.author else None,
        "text": message.text,
        "created_at": message.created_at,
    }


def _status_change(change: StatusChange) -> dict:
    return {
        "from_status": change.from_status or None,
        "to_status": change.to_status,
        "event": change.event,
        "source": change.source,
        "actor": change.actor.get_username() if change.actor else None,
        "note": change.note,
        "at": change.at,
    }


def _tags_query():
    return Prefetch("tags", queryset=Tag.objects.order_by("name"))


def _get_conversation(conversation_id: int, *, detail: bool = False) -> Conversation:
    queryset = Conversation.objects.select_related("contact", "assignee").prefetch_related(
        _tags_query()
    )
    if detail:
        queryset = queryset.prefetch_related(
            Prefetch("messages", queryset=Message.objects.select_related("author")),
            Prefetch("status_changes", queryset=StatusChange.objects.select_related("actor")),
        )
    conversation = queryset.filter(pk=conversation_id).first()
    if conversation is None:
        raise Http404(f"There is no conversation with id {conversation_id}.")
    return conversation


def _require_conversation(conversation_id: int) -> int:
    if not Conversation.objects.filter(pk=conversation_id).exists():
        raise Http404(f"There is no conversation with id {conversation_id}.")
    return conversation_id


def _start_of_day(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


# --- cursor -------------------------------------------------------------------------


def encode_cursor(conversation: Conversation) -> str:
    return cursor_pack(conversation.last_activity_at.isoformat(), conversation.pk)


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        at, pk = cursor_unpack(cursor)
        at = datetime.fromisoformat(at)
        if not isinstance(pk, int) or isinstance(pk, bool) or at.tzinfo is None:
            raise ValueError
    except (ValueError, TypeError):
        raise InvalidInput(
            "The cursor is not valid: pass the next_cursor of a previous page.",
            code="invalid_cursor",
        ) from None
    return at, pk


# --- contacts and inbound messages ---------------------------------------------------


@router.post(
    "/contacts",
    response={201: ContactCreatedOut, **ERRORS},
    summary="Create a contact (its first conversation is Not contacted)",
    description="409 `contact_exists` when the channel and external id are taken.",
)
def contact_create(request, payload: ContactIn):
    contact = services.contact_create(
        channel=payload.channel,
        external_id=payload.external_id,
        name=payload.name,
        attributes=payload.attributes,
        source=Source.API,
        actor=request.auth,
    )
    conversation = contact.conversations.open().get()
    return Respond(
        201,
        {
            "contact": _contact(contact),
            "conversation": {"id": conversation.pk, "status": conversation.status},
        },
    )


@router.post(
    "/messages/inbound",
    response={201: InboundOut, **ERRORS},
    summary="A contact writes (the contact is created if unknown)",
    description=(
        "Applies the inbound transition: a closed conversation stays in history and a "
        "new one opens; returns the conversation's id and status."
    ),
)
def message_inbound(request, payload: InboundIn):
    inbound = services.message_receive(
        channel=payload.channel,
        external_id=payload.external_id,
        text=payload.text,
        name=payload.name,
    )
    return Respond(
        201,
        {
            "message_id": inbound.message.pk,
            "contact_id": inbound.conversation.contact_id,
            "contact_created": inbound.contact_created,
            "conversation_id": inbound.conversation.pk,
            "status": inbound.conversation.status,
        },
    )


# --- conversations ---------------------------------------------------------------------


@router.get(
    "/conversations",
    response={200: ConversationPageOut, **ERRORS},
    summary="List conversations, most recently active first (cursor-paginated)",
)
def conversation_list(request, filters: Query[ConversationFilters]):
    """The inbox's filters. `status` may be repeated (`?status=new&status=in_progress`)
    or comma-separated; `archived` defaults to `no`, like the inbox."""
    queryset = _filtered(filters, agent=request.auth)
    if filters.cursor:
        at, pk = decode_cursor(filters.cursor)
        # ``<=`` is redundant but starts the index scan at the cursor (docs/performance.md).
        queryset = queryset.filter(last_activity_at__lte=at).filter(
            Q(last_activity_at__lt=at) | Q(last_activity_at=at, pk__lt=pk)
        )
    page = list(queryset.by_activity()[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {
        "items": [_conversation(c) for c in page],
        "next_cursor": encode_cursor(page[-1]) if more else None,
    }


def _filtered(filters: ConversationFilters, *, agent):
    statuses = {s.strip() for value in filters.status for s in value.split(",") if s.strip()}
    unknown = statuses - {str(s) for s in Status}
    if unknown:
        raise InvalidInput(
            f"Unknown status {sorted(unknown)[0]!r}; use one of "
            + ", ".join(str(s) for s in Status)
            + "."
        )
    if filters.archived not in ARCHIVED_CHOICES:
        raise InvalidInput("archived must be 'no', 'yes' or 'any'.")
    start, end = filters.active_from, filters.active_to
    if start and end and start > end:
        raise InvalidInput("active_to is before active_from.")

    queryset = Conversation.objects.select_related("contact", "assignee").prefetch_related(
        _tags_query()
    )
    if filters.archived == "no":
        queryset = queryset.not_archived()
    elif filters.archived == "yes":
        queryset = queryset.archived()
    if statuses:
        queryset = queryset.filter(status__in=statuses)
    if filters.tag:
        queryset = queryset.filter(tags__name__iexact=filters.tag.strip())
    if filters.channel:
        queryset = queryset.filter(contact__channel=filters.channel.strip().lower())
    if filters.assignee == "me":
        queryset = queryset.filter(assignee=agent)
    elif filters.assignee == "none":
        queryset = queryset.filter(assignee__isnull=True)
    elif filters.assignee:
        queryset = queryset.filter(assignee__username=filters.assignee)
    text = (filters.q or "").strip()
    if text:
        # Exists, not a join: a conversation with many matching messages is one row.
        in_messages = Exists(
            Message.objects.filter(conversation=OuterRef("pk"), text__icontains=text)
        )
        queryset = queryset.filter(
            Q(contact__name__icontains=text) | Q(contact__external_id__iexact=text) | in_messages
        )
    if start:
        queryset = queryset.filter(last_activity_at__gte=_start_of_day(start))
    if end:
        queryset = queryset.filter(last_activity_at__lt=_start_of_day(end + timedelta(days=1)))
    return queryset


@router.get(
    "/conversations/{conversation_id}",
    response={200: ConversationDetailOut, **ERRORS},
    summary="A conversation with its contact, tags, messages and status history",
)
def conversation_detail(request, conversation_id: int):
    conversation = _get_conversation(conversation_id, detail=True)
    return {
        **_conversation(conversation),
        "messages": [_message(m) for m in conversation.messages.all()],
        "status_history": [_status_change(c) for c in conversation.status_changes.all()],
    }


@router.post(
    "/conversations/{conversation_id}/reply",
    response={201: ReplyOut, **ERRORS},
    summary="Reply as the token's user",
    description="New, In progress, Not contacted → In progress; takes over a flow; "
    "409 `illegal_transition` on a closed conversation (read-only).",
)
def conversation_reply(request, conversation_id: int, payload: ReplyIn):
    _require_conversation(conversation_id)
    message = services.conversation_reply(
        conversation=conversation_id, agent=request.auth, text=payload.text, source=Source.API
    )
    conversation = Conversation.objects.only("status").get(pk=conversation_id)
    message.author = request.auth
    return Respond(
        201,
        {
            "message": _message(message),
            "conversation": {"id": conversation.pk, "status": conversation.status},
        },
    )


def _status_action(service, conversation_id: int, actor) -> dict:
    _require_conversation(conversation_id)
    service(conversation=conversation_id, actor=actor, source=Source.API)
    return _conversation(_get_conversation(conversation_id))


@router.post(
    "/conversations/{conversation_id}/close",
    response={200: ConversationOut, **ERRORS},
    summary="Close (tags lock; a running flow is cancelled)",
    description="409 `illegal_transition` when it is already closed.",
)
def conversation_close(request, conversation_id: int):
    return _status_action(services.conversation_close, conversation_id, request.auth)


@router.post(
    "/conversations/{conversation_id}/archive",
    response={200: ConversationOut, **ERRORS},
    summary="Archive a closed conversation",
    description="409 `not_archivable` unless closed and not yet archived.",
)
def conversation_archive(request, conversation_id: int):
    return _status_action(services.conversation_archive, conversation_id, request.auth)


@router.post(
    "/conversations/{conversation_id}/unarchive",
    response={200: ConversationOut, **ERRORS},
    summary="Unarchive (it stays closed)",
    description="409 `illegal_transition` when it is not archived.",
)
def conversation_unarchive(request, conversation_id: int):
    return _status_action(services.conversation_unarchive, conversation_id, request.auth)


def _tags(conversation_id: int) -> dict:
    tags = Tag.objects.filter(conversation_links__conversation_id=conversation_id).order_by("name")
    return {
        "conversation_id": conversation_id,
        "tags": [{"name": t.name, "colour": t.colour} for t in tags],
    }


@router.post(
    "/conversations/{conversation_id}/tags",
    response={201: TagsOut, **ERRORS},
    summary="Add a tag (created on first use)",
    description="409 `tags_locked` when the conversation is closed.",
)
def conversation_tag_add(request, conversation_id: int, payload: TagIn):
    _require_conversation(conversation_id)
    services.conversation_tag_add(conversation=conversation_id, tag=payload.name)
    return Respond(201, _tags(conversation_id))


@router.delete(
    "/conversations/{conversation_id}/tags/{path:name}",
    response={200: TagsOut, **ERRORS},
    summary="Remove a tag",
    description="409 `tags_locked` when the conversation is closed; 404 when it does not "
    "carry the tag.",
)
def conversation_tag_remove(request, conversation_id: int, name: str):
    _require_conversation(conversation_id)
    removed = services.conversation_tag_remove(conversation=conversation_id, tag=name)
    if not removed:
        raise Http404(f"The conversation does not carry the tag {name!r}.")
    return _tags(conversation_id)
