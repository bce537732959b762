"""The conversations router of the integration API (PRODUCT.md §9).

Every write goes through ``services``, so the API refuses exactly what the inbox
refuses; refusals are raised as ``ParleyError`` and shaped by the API's one error
handler (config/api.py), which also owns the bearer auth. Responses are the model
objects, shaped by the schemas (``schemas.py``).

The list (``GET /conversations``) is the inbox's own list, FilterSet and cursor
included, so it lives with the API's wiring in config/api.py (the core does not
import the inbox).
"""

from django.contrib.auth import get_user_model
from django.db.models import Prefetch
from django.http import Http404
from ninja import Router
from ninja.responses import Status as Respond

from . import services, snooze
from .idempotency import idempotent
from .models import Activity, Conversation, Mention, Message, Source, StatusChange, Tag
from .schemas import (
    ContactCreatedOut,
    ContactIn,
    ConversationDetailOut,
    ConversationOut,
    ErrorOut,
    Id,
    InboundIn,
    InboundOut,
    NoteIn,
    NoteOut,
    ReplyIn,
    ReplyOut,
    SnoozeIn,
    TagIn,
    TagsOut,
)

router = Router(tags=["conversations"])

ERRORS = {401: ErrorOut, 404: ErrorOut, 409: ErrorOut, 422: ErrorOut}


def conversations_for_api():
    """Conversations with what ``ConversationOut`` reads, in a fixed number of queries."""
    tags = Prefetch("tags", queryset=Tag.objects.order_by("name"))
    return Conversation.objects.select_related("contact", "assignee").prefetch_related(tags)


def _get_conversation(conversation_id: int, *, detail: bool = False) -> Conversation:
    queryset = conversations_for_api()
    if detail:
        mentions = Prefetch("mentions", queryset=Mention.objects.select_related("agent"))
        activities = Activity.objects.select_related("actor").prefetch_related(mentions)
        queryset = queryset.select_related("closed_by").prefetch_related(
            Prefetch("messages", queryset=Message.objects.select_related("author")),
            Prefetch("status_changes", queryset=StatusChange.objects.select_related("actor")),
            Prefetch("activities", queryset=activities),
        )
    conversation = queryset.filter(pk=conversation_id).first()
    if conversation is None:
        raise Http404(f"There is no conversation with id {conversation_id}.")
    if detail:
        _name_assignees(conversation.activities.all())
    return conversation


def _name_assignees(activities) -> None:
    """``from_assignee`` / ``to_assignee`` (usernames) on the assignment lines, in one query."""
    assigned = [a for a in activities if a.kind == Activity.Kind.ASSIGNED]
    ids = {a.data.get(key) for a in assigned for key in ("from", "to")} - {None}
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    for activity in assigned:
        activity.from_assignee = names.get(activity.data.get("from"))
        activity.to_assignee = names.get(activity.data.get("to"))


def _require_conversation(conversation_id: int) -> int:
    if not Conversation.objects.filter(pk=conversation_id).exists():
        raise Http404(f"There is no conversation with id {conversation_id}.")
    return conversation_id


@router.post(
    "/contacts",
    response={201: ContactCreatedOut, **ERRORS},
    summary="Create a contact (its first conversation is Not contacted)",
    description="409 `contact_exists` when the channel and external id are taken.",
)
@idempotent
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
    return Respond(201, {"contact": contact, "conversation": conversation})


@router.post(
    "/messages/inbound",
    response={201: InboundOut, **ERRORS},
    summary="A contact writes (the contact is created if unknown)",
    description=(
        "Applies the inbound transition: a closed conversation stays in history and a "
        "new one opens; returns the conversation's id and status."
    ),
)
@idempotent
def message_inbound(request, payload: InboundIn):
    inbound = services.message_receive(
        channel=payload.channel,
        external_id=payload.external_id,
        text=payload.text,
        name=payload.name,
    )
    conversation = inbound.conversation
    return Respond(
        201,
        {
            "message_id": inbound.message.pk,
            "contact_id": conversation.contact_id,
            "contact_created": inbound.contact_created,
            "conversation_id": conversation.pk,
            "status": conversation.status,
        },
    )


@router.get(
    "/conversations/{conversation_id}",
    response={200: ConversationDetailOut, **ERRORS},
    summary="A conversation with its contact, tags, messages and status history",
)
def conversation_detail(request, conversation_id: Id):
    return _get_conversation(conversation_id, detail=True)


@router.post(
    "/conversations/{conversation_id}/reply",
    response={201: ReplyOut, **ERRORS},
    summary="Reply as the token's user",
    description="New, In progress, Not contacted → In progress; takes over a flow; "
    "409 `illegal_transition` on a closed conversation (read-only).",
)
@idempotent
def conversation_reply(request, conversation_id: Id, payload: ReplyIn):
    _require_conversation(conversation_id)
    message = services.conversation_reply(
        conversation=conversation_id,
        agent=request.auth,
        text=payload.text,
        source=Source.API,
        template={"name": payload.template, "params": payload.template_params}
        if payload.template
        else None,
    )
    message.author = request.auth
    conversation = Conversation.objects.only("status").get(pk=conversation_id)
    return Respond(201, {"message": message, "conversation": conversation})


@router.post(
    "/conversations/{conversation_id}/notes",
    response={201: NoteOut, **ERRORS},
    summary="Add a private note as the token's user",
    description="Agents only: never sent to the contact, no status, waiting or ordering "
    "change; allowed on closed conversations too. `@username` (or `@first name`) mentions "
    "an agent, who sees it in the inbox's Mentions.",
)
@idempotent
def conversation_note(request, conversation_id: Id, payload: NoteIn):
    _require_conversation(conversation_id)
    note = services.note_add(
        conversation=conversation_id, author=request.auth, text=payload.text, source=Source.API
    )
    mentions = Prefetch("mentions", queryset=Mention.objects.select_related("agent"))
    return Respond(
        201, Activity.objects.select_related("actor").prefetch_related(mentions).get(pk=note.pk)
    )


def _status_action(service, conversation_id: int, actor) -> Conversation:
    _require_conversation(conversation_id)
    service(conversation=conversation_id, actor=actor, source=Source.API)
    return _get_conversation(conversation_id)


@router.post(
    "/conversations/{conversation_id}/close",
    response={200: ConversationOut, **ERRORS},
    summary="Close (tags lock; a running flow is cancelled)",
    description="Answers with the resulting status: `closed`, or `resolved` when satisfaction "
    "surveys are on and an agent replied (the survey is sent). 409 `illegal_transition` when "
    "it is already closed or resolved.",
)
def conversation_close(request, conversation_id: Id):
    return _status_action(services.conversation_close, conversation_id, request.auth)


@router.post(
    "/conversations/{conversation_id}/archive",
    response={200: ConversationOut, **ERRORS},
    summary="Archive a closed conversation",
    description="409 `not_archivable` unless closed and not yet archived.",
)
def conversation_archive(request, conversation_id: Id):
    return _status_action(services.conversation_archive, conversation_id, request.auth)


@router.post(
    "/conversations/{conversation_id}/unarchive",
    response={200: ConversationOut, **ERRORS},
    summary="Unarchive (it stays closed)",
    description="409 `illegal_transition` when it is not archived.",
)
def conversation_unarchive(request, conversation_id: Id):
    return _status_action(services.conversation_unarchive, conversation_id, request.auth)


@router.post(
    "/conversations/{conversation_id}/snooze",
    response={200: ConversationOut, **ERRORS},
    summary="Snooze until a time (not a status)",
    description="It leaves the default views for the Snoozed view and wakes up, unread, "
    "at `until` or when the contact writes; snoozing again moves the time. 409 "
    "`illegal_transition` when the conversation is closed; 422 `invalid_input` for a "
    "time in the past, without a time zone, or more than a year ahead.",
)
def conversation_snooze(request, conversation_id: Id, payload: SnoozeIn):
    _require_conversation(conversation_id)
    snooze.conversation_snooze(
        conversation=conversation_id, until=payload.until, actor=request.auth, source=Source.API
    )
    return _get_conversation(conversation_id)


@router.post(
    "/conversations/{conversation_id}/unsnooze",
    response={200: ConversationOut, **ERRORS},
    summary="Wake a snoozed conversation now",
    description="409 `not_snoozed` when it is not snoozed.",
)
def conversation_unsnooze(request, conversation_id: Id):
    return _status_action(snooze.conversation_unsnooze, conversation_id, request.auth)


def _tags(conversation_id: int) -> dict:
    tags = Tag.objects.filter(conversation_links__conversation_id=conversation_id).order_by("name")
    return {"conversation_id": conversation_id, "tags": list(tags)}


@router.post(
    "/conversations/{conversation_id}/tags",
    response={201: TagsOut, **ERRORS},
    summary="Add a tag (created on first use)",
    description="409 `tags_locked` when the conversation is closed.",
)
def conversation_tag_add(request, conversation_id: Id, payload: TagIn):
    _require_conversation(conversation_id)
    services.conversation_tag_add(
        conversation=conversation_id, tag=payload.name, actor=request.auth, source=Source.API
    )
    return Respond(201, _tags(conversation_id))


@router.delete(
    "/conversations/{conversation_id}/tags/{path:name}",
    response={200: TagsOut, **ERRORS},
    summary="Remove a tag",
    description="409 `tags_locked` when the conversation is closed; 404 when it does not "
    "carry the tag.",
)
def conversation_tag_remove(request, conversation_id: Id, name: str):
    _require_conversation(conversation_id)
    removed = services.conversation_tag_remove(
        conversation=conversation_id, tag=name, actor=request.auth, source=Source.API
    )
    if not removed:
        raise Http404(f"The conversation does not carry the tag {name!r}.")
    return _tags(conversation_id)
