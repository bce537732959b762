"""The agents' inbox: the list, the conversation pane, the contact page, bulk actions.

Views parse, call a selector or a service, and render. Reads go through querysets
and selectors; every write goes through ``conversations.services``. With htmx a view
renders just the part of the page it changes (a named partial); without, the whole
page, so every link and form also works as plain HTML.

After every action the response fires ``conversationChanged`` (``HX-Trigger``): the
list and the tab counts refresh themselves, and so does an open pane unless the
action came from the pane itself (its response already is the fresh pane).
"""

from datetime import datetime

from django.contrib import messages
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import push_url, trigger_client_event

from connectors.whatsapp.outbound import templates_for
from conversations import services, snooze
from conversations.availability import set_away
from conversations.exceptions import (
    ChangedMeanwhile,
    IllegalTransition,
    InvalidInput,
    ParleyError,
)
from conversations.inbox_settings import business_timezone, inbox_settings
from conversations.models import (
    Contact,
    Conversation,
    ConversationTag,
    Direction,
    Mention,
    StatusChange,
    Tag,
    tag_key,
)
from conversations.reads import mark_read
from conversations.selectors import TABS, contact_history, status_counts
from conversations.transitions import OPEN, STATUS_LABELS, Event, Status, allowed
from flows.decorators import agent_required

from . import choices
from .choices import user_labels
from .display import agent_options, list_rows, note_html, path, thread_html, url_maker
from .filters import ASSIGNEE_ME, ASSIGNEE_NONE, VIEW_ALL, agent_label
from .forms import BULK_LIMIT, AssignForm, BulkActionForm, ContactForm, contact_seen
from .selectors import (
    VIEW_COUNT_CAP,
    BadCursor,
    Heads,
    InboxPage,
    attach_tags,
    canonical_query,
    contact_search,
    conversation_list,
    conversation_thread,
    filtered_conversations,
    inbox_heads,
    inbox_version,
    with_tag_ids,
)

CHANGED = "conversationChanged"
LIST_ID = "conversation-list"
LOAD_MORE_ID = "load-more"
PANE_ID = "conversation-pane"
THREAD_EARLIER_ID = "thread-earlier"


# --- helpers ----------------------------------------------------------------------


def htmx_partial(request) -> bool:
    """An htmx request for part of the page (a history restore wants the page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def query_suffix(query: QueryDict) -> str:
    return f"?{query.urlencode()}" if query else ""


def list_url(query: QueryDict) -> str:
    return path("inbox:list") + query_suffix(query)


def build_tabs(page: InboxPage, counts: dict[str, int]) -> list[dict]:
    """The status tabs: each a link that keeps the other filters (the tabs choose
    among all conversations, not the default view)."""
    statuses = page.query.getlist("status")
    archived = page.query.get("archived", "no")
    if page.query.get("snoozed", "no") != "no":  # the Snoozed view, not a status tab
        archived = None
    view = page.filterset.form.cleaned_data.get("view") if not page.errors else None

    def link(**changes) -> str:
        query = page.query.copy()
        for key in ("status", "archived", "snoozed", "view"):
            query.pop(key, None)
        for key, value in changes.items():
            query[key] = value
        return list_url(canonical_query(query))

    tabs = [
        {
            "key": "all",
            "label": "All",
            "count": counts["all"],
            "url": link(view=VIEW_ALL),
            "active": view == VIEW_ALL and not statuses and archived == "no",
        }
    ]
    csat = inbox_settings().csat_enabled
    for key, label in TABS:
        if key == Status.RESOLVED and not (csat or statuses == [key]):
            continue
        if key == "archived":
            url, active = link(archived="yes"), archived == "yes" and not statuses
        else:
            url, active = link(status=key), statuses == [key] and archived == "no"
        tabs.append(
            {"key": key, "label": label, "count": counts[key], "url": url, "active": active}
        )
    return tabs


def rows_context(page: InboxPage) -> dict:
    """What the ``list-page`` partial needs: the page and its rows, rendered."""
    suffix = query_suffix(page.query)
    return {
        "page": page,
        # Reversed once, not by {% url %} a dozen times in the template.
        "inbox_urls": {name: path(f"inbox:{name}") for name in ("list", "bulk", "poll")},
        "list_suffix": suffix,
        "rows_html": list_rows(page.rows, suffix, page.tags_by_id),
    }


OPEN_STATUSES = [str(status) for status in Status if status in OPEN]


def view_url(assignee: str) -> str:
    """The Mine / Unassigned views: the open conversations of an assignee."""
    query = QueryDict(mutable=True)
    query["assignee"] = assignee
    query.setlist("status", OPEN_STATUSES)
    return list_url(query)


SNOOZED_URL_QUERY = QueryDict("snoozed=yes")


def view_count_label(count: int) -> str:
    return f"{VIEW_COUNT_CAP}+" if count > VIEW_COUNT_CAP else str(count)


def build_views(page: InboxPage, heads: Heads, counts: dict[str, int]) -> list[dict]:
    statuses = sorted(page.query.getlist("status"))
    others = [name for name in page.query if name not in ("assignee", "status")]
    views = [
        {
            "key": "needs-me",
            "label": "Needs me",
            "count": "",
            "url": path("inbox:list"),
            "active": not page.query and not page.errors,
        }
    ]
    for key, label, assignee, count in (
        ("mine", "Mine", ASSIGNEE_ME, heads.mine),
        ("unassigned", "Unassigned", ASSIGNEE_NONE, heads.unassigned),
        ("mentions", "Mentions", None, heads.mentions),
    ):
        active = (
            page.query.get("assignee") == assignee
            and statuses == sorted(OPEN_STATUSES)
            and not others
        )
        shown = view_count_label(count)
        url = view_url(assignee) if assignee else path("inbox:mentions")
        if not assignee:  # a page of its own, not a filter of the list
            active = False
        views.append({"key": key, "label": label, "count": shown, "url": url, "active": active})
    views.append(
        {
            "key": "snoozed",
            "label": "Snoozed",
            "count": str(counts["snoozed"]),
            "url": list_url(SNOOZED_URL_QUERY),
            "active": page.query == SNOOZED_URL_QUERY,
        }
    )
    return views


def list_context(request, page: InboxPage) -> dict:
    filterset = page.filterset
    form = filterset.form
    # Status has its tabs and search its box; the other filters live in the panel.
    in_panel = [name for name in page.query if name not in ("q", "status", "view")]
    heads = inbox_heads(agent_id=request.user.pk)
    counts = page.counts if page.counts is not None else status_counts()
    return {
        **rows_context(page),
        "form": form,
        "tabs": build_tabs(page, counts),
        "version": heads.version,
        # Server push needs the ASGI server (bin/run); elsewhere the heartbeat serves.
        "live": isinstance(request, ASGIRequest),
        "views": build_views(page, heads, counts),
        "agent_away": heads.away,  # read here, not by the context processor
        "bulk_agent_options": agent_options(filterset.agents),
        "tag_names": filterset.tag_names,
        "active_filter_count": len([name for name in page.query if name not in ("q", "view")]),
        # The tab counts are the whole inbox's (kept by triggers), whatever the view.
        "counts_note": page.query.dict() != {"view": VIEW_ALL},
        "open_filter_panel": bool(in_panel or page.errors),
        "bulk_limit": BULK_LIMIT,
    }


def load_conversation(pk: int) -> Conversation:
    """The conversation for the pane, its tags' ids as a column (see
    ``pane_context``)."""
    conversations = Conversation.objects.select_related("contact", "assignee")
    return get_object_or_404(with_tag_ids(conversations), pk=pk)


def thread_context(
    request, conversation: Conversation, *, before: str = "", strict: bool = False
) -> dict:
    """The thread's entries for the pane: the newest page; with ``before`` (a cursor:
    "Show earlier messages") the page before it; with ``since`` (sent by the pane's
    refreshes and actions, see inbox.js) every entry the reader has loaded. A bad
    cursor gives the newest page, or raises ``BadCursor`` when ``strict``."""
    since = request.GET.get("since") or request.POST.get("since") or ""
    try:
        thread = conversation_thread(conversation=conversation, before=before, since=since)
    except BadCursor:
        if strict:
            raise
        thread = conversation_thread(conversation=conversation)
    list_query = canonical_query(request.GET)
    pane_url = url_maker("inbox:pane")(conversation.pk)
    earlier_url = ""
    if thread.earlier:
        query = list_query.copy()
        query["before"] = thread.earlier
        earlier_url = f"{pane_url}?{query.urlencode()}"
    return {
        "thread": thread,
        "thread_html": thread_html(
            thread, conversation.contact.display_name, earlier_url, conversation.contact.channel
        ),
        "newest_url": pane_url + query_suffix(list_query),
    }


def pane_context(
    request,
    conversation: Conversation,
    *,
    notice: str = "",
    level: str = "success",
    draft: str = "",
    keep_draft: bool = True,
    composer: str = "",
) -> dict:
    """What the pane shows; the agents and the tags come from the choices memory.
    ``composer``: "note" shows the note box (else the one the page had, see inbox.js)."""
    if not composer:
        asked = request.GET.get("composer") or request.POST.get("composer")
        composer = "note" if asked == "note" else "reply"
    status, archived = conversation.status, conversation.is_archived
    # An inactive assignee is not among the choices (as before): no reload for it.
    agents = choices.agents()
    tags = choices.tags_knowing(ids=conversation.tag_ids)
    suffix = query_suffix(canonical_query(request.GET))
    attach_tags([conversation], tags.by_id)
    on_it = {tag.name.lower() for tag in conversation.row_tags}
    thread = thread_context(request, conversation, before=request.GET.get("before", ""))
    return {
        "conversation": conversation,
        "read_url": read_url(conversation.pk, thread["thread"]),
        "contact": conversation.contact,
        "conversation_tags": conversation.row_tags,
        **thread,
        "can": {
            "reply": allowed(Event.AGENT_REPLY, status, archived),
            "close": allowed(Event.CLOSE, status, archived),
            "archive": allowed(Event.ARCHIVE, status, archived),
            "unarchive": allowed(Event.UNARCHIVE, status, archived),
            # The tag lock and assignment follow the services: not closed or resolved.
            "edit_tags": not conversation.tags_locked,
            "assign": not conversation.tags_locked,
            "snooze": status in OPEN,
        },
        "snooze_presets": snooze.presets() if status in OPEN else [],
        "snoozed_until": snooze.describe(conversation.snoozed_until)
        if conversation.is_snoozed
        else "",
        # The "Start flow" form's choices (flows/partials/start_flow.html).
        "flows": choices.flows(),
        "whatsapp_templates": templates_for(conversation.contact.channel)
        if allowed(Event.AGENT_REPLY, status, archived)
        else [],
        "pane_agent_options": agent_options(
            agents, selected=conversation.assignee_id, me=request.user.pk
        ),
        "tag_suggestions": [tag.name for tag in tags.all if tag.name.lower() not in on_it],
        "notice": notice,
        "notice_level": level,
        "draft": draft if composer == "reply" else "",
        "note_draft": draft if composer == "note" else "",
        "keep_draft": keep_draft,
        "composer": composer,
        "mention_agents": choices.mention_agents(),
        "mentions_read_url": mentions_read_url(conversation.pk, thread["thread"], request.user.pk),
        "list_suffix": suffix,
        "pane_url": thread["newest_url"],  # this pane, keeping the list's filters
        "action_urls": action_urls(conversation.pk, suffix),
        # Reversed once per process, not by {% url %} on every pane.
        "pane_urls": {
            "list": path("inbox:list"),
            "contact": url_maker("inbox:contact")(conversation.contact_id),
            "saved_replies": path("inbox:saved_reply_search"),
            "fill": url_maker("inbox:pane")(conversation.pk) + "replies/",
        },
    }


def read_url(pk: int, thread) -> str:
    """Where the pane says "read up to here" (the newest contact message shown);
    "" when it shows none, or an older page."""
    if thread.is_older_page:
        return ""
    shown = [
        entry.at
        for entry in thread.entries
        if entry.kind == "message" and entry.item.direction == Direction.INBOUND
    ]
    if not shown:
        return ""
    query = QueryDict(mutable=True)
    query["upto"] = max(shown).isoformat()
    return url_maker("inbox:read")(pk) + "?" + query.urlencode()


def mentions_read_url(pk: int, thread, agent_id: int) -> str:
    """Where the pane says "I saw the notes mentioning me" ("" when it shows none)."""
    for entry in thread.entries:
        if entry.kind == "activity" and agent_id in (entry.item.data or {}).get("mentions", ()):
            return url_maker("inbox:mentions_read")(pk)
    return ""


PANE_ACTIONS = (
    "reply",
    "note",
    "close",
    "archive",
    "unarchive",
    "assign",
    "tag_add",
    "tag_remove",
    "snooze",
    "unsnooze",
    "contact_edit",
)


def action_urls(pk: int, suffix: str) -> dict[str, str]:
    """The pane's form targets (each keeps the list's filters), reversed once here
    rather than twice per form in the template."""
    return {name: url_maker(f"inbox:{name}")(pk) + suffix for name in PANE_ACTIONS}


def changed(response: HttpResponse, **detail) -> HttpResponse:
    return trigger_client_event(response, CHANGED, detail)


# --- the list ---------------------------------------------------------------------


@never_cache
@require_GET
@agent_required
def inbox(request):
    """``/inbox/``: the page; with htmx, the list (plus the tabs, and on
    navigation the filter form), or the next page of rows for "load more"."""
    load_more = htmx_partial(request) and request.htmx.target == LOAD_MORE_ID
    page = conversation_list(request=request, params=request.GET, with_total=not load_more)
    if load_more:
        response = render(request, "inbox/inbox.html#list-page", rows_context(page))
    elif htmx_partial(request):
        context = list_context(request, page)
        # A refresh keeps the URL (it may be a pane's); navigation pushes the
        # canonical one and resets the pane, so the URL always says what is shown.
        navigation = request.htmx.trigger != LIST_ID
        context["navigation"] = navigation
        context["refresh_filter_form"] = navigation and request.htmx.trigger != "filter-form"
        response = render(request, "inbox/inbox.html#list-response", context)
        if navigation:
            push_url(response, list_url(page.query))
    else:
        context = list_context(request, page)
        response = render(request, "inbox/inbox.html", context, status=400 if page.errors else 200)
    patch_vary_headers(response, ["HX-Request"])
    return response


@never_cache
@require_GET
@agent_required
def poll(request):
    """The list's heartbeat: nothing (204) when nothing changed, else the event
    that makes the list, the tabs and an open pane refresh themselves."""
    if request.GET.get("v") == inbox_version():
        return HttpResponse(status=204)
    return changed(HttpResponse(), source="poll")


# --- the pane ---------------------------------------------------------------------


@never_cache
@require_GET
@agent_required
def pane(request, pk: int):
    """``/inbox/c/<id>/``: the conversation pane; opened directly, the inbox page
    with this pane open and the list filtered by the query string."""
    if htmx_partial(request) and request.htmx.target == THREAD_EARLIER_ID:
        # "Show earlier messages": the entries before the cursor, and the next link.
        conversation = get_object_or_404(Conversation.objects.select_related("contact"), pk=pk)
        before = request.GET.get("before", "")
        try:
            context = thread_context(request, conversation, before=before, strict=True)
        except BadCursor as exc:
            response = render(request, "inbox/pane.html#thread-error", {"error": str(exc)})
        else:
            response = render(request, "inbox/pane.html#thread-entries", context)
    elif htmx_partial(request):
        try:
            conversation = load_conversation(pk)
        except Http404:
            response = render(request, "inbox/partials/pane_empty.html", {"missing": True})
        else:
            response = render(request, "inbox/pane.html", pane_context(request, conversation))
    else:
        conversation = load_conversation(pk)
        page = conversation_list(request=request, params=request.GET)
        context = list_context(request, page)
        context |= pane_context(request, conversation)
        context["pane_open"] = True
        response = render(request, "inbox/inbox.html", context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def pane_action(
    request, pk: int, action, *, success="", draft: str | None = None, composer: str = ""
):
    """Run ``action`` (a service call); answer with the pane re-read from the
    database, showing the outcome: a refusal is a message in the pane, status 200,
    so htmx swaps it in. ``draft`` is the reply text: kept when refused, cleared
    when sent."""
    if not Conversation.objects.filter(pk=pk).exists():
        raise Http404("No such conversation.")
    level, keep_draft = "success", True
    try:
        result = action()
    except ParleyError as exc:
        notice, level = exc.detail, "error"
        if draft:
            notice = refused_reply_notice(pk, notice)
    else:
        notice = success(result) if callable(success) else success
        if draft is not None:
            draft, keep_draft = "", False
    if not htmx_partial(request):
        if notice:
            messages.add_message(
                request, messages.ERROR if level == "error" else messages.SUCCESS, notice
            )
        pane_url = reverse("inbox:pane", args=[pk]) + query_suffix(canonical_query(request.GET))
        return redirect(pane_url)
    conversation = load_conversation(pk)
    context = pane_context(
        request,
        conversation,
        notice=notice,
        level=level,
        draft=draft or "",
        keep_draft=keep_draft,
        composer=composer,
    )
    response = render(request, "inbox/pane.html", context)
    # The pane is already fresh; the list and the tabs refresh themselves.
    return changed(response, id=pk, pane=True)


def refused_reply_notice(pk: int, detail: str) -> str:
    """A reply refused because the conversation closed meanwhile says who closed it."""
    change = (
        StatusChange.objects.filter(conversation_id=pk)
        .select_related("actor")
        .order_by("-at", "-id")
        .first()
    )
    if change is None or change.to_status not in (Status.CLOSED, Status.RESOLVED):
        return detail
    who = agent_label(change.actor) if change.actor else "someone else"
    return f"Closed a moment ago by {who}. {detail} Your reply was not sent; it is kept below."


@require_POST
@agent_required
def reply(request, pk: int):
    text = request.POST.get("text", "")
    template = None
    if request.POST.get("template"):
        params = request.POST.get("template_params", "").splitlines()
        template = {"name": request.POST["template"], "params": [p for p in params if p.strip()]}
    return pane_action(
        request,
        pk,
        lambda: services.conversation_reply(
            conversation=pk, agent=request.user, text=text, template=template
        ),
        draft=text,
    )


@require_POST
@agent_required
def note(request, pk: int):
    text = request.POST.get("note", "")
    return pane_action(
        request,
        pk,
        lambda: services.note_add(conversation=pk, author=request.user, text=text),
        success="Note added. Only agents see it.",
        draft=text,
        composer="note",
    )


@require_POST
@agent_required
def mentions_read(request, pk: int):
    """The pane showed the notes mentioning the agent: they are read; when some were
    not, the page's Mentions count takes the new one (stream.js)."""
    unread = Mention.objects.filter(agent=request.user, read_at__isnull=True)
    if not unread.filter(conversation_id=pk).update(read_at=timezone.now()):
        return HttpResponse(status=204)
    count = unread[: VIEW_COUNT_CAP + 1].count()
    return trigger_client_event(
        HttpResponse(), "mentionsRead", {"id": pk, "unread": view_count_label(count)}
    )


MENTIONS_PAGE = 50


@never_cache
@require_GET
@agent_required
def mentions(request):
    """The notes that mention the agent, newest first (keyset pages: ``?before=<id>``)."""
    rows = Mention.objects.filter(agent=request.user).select_related(
        "note", "conversation__contact"
    )
    before = request.GET.get("before", "")
    if before.isdigit() and len(before) < 19:
        rows = rows.filter(pk__lt=int(before))
    rows = list(rows.order_by("-id")[: MENTIONS_PAGE + 1])
    labels = user_labels(row.note.actor_id for row in rows if row.note.actor_id)
    items = [
        {
            "mention": row,
            "author": labels.get(row.note.actor_id, "An agent"),
            "text": note_html(row.note.data.get("text", "")),
        }
        for row in rows[:MENTIONS_PAGE]
    ]
    more = rows[MENTIONS_PAGE - 1].pk if len(rows) > MENTIONS_PAGE else None
    return render(request, "inbox/mentions.html", {"items": items, "more": more})


@require_POST
@agent_required
def close(request, pk: int):
    return pane_action(
        request,
        pk,
        lambda: services.conversation_close(conversation=pk, actor=request.user),
        success=lambda conversation: CLOSE_NOTICES[conversation.status],
    )


CLOSE_NOTICES = {
    Status.CLOSED: "Closed. The conversation is now read-only and its tags are locked.",
    Status.RESOLVED: "Resolved. The satisfaction survey was sent; the contact's answer (or the "
    "end of its window) closes it. Its tags are locked.",
}


@require_POST
@agent_required
def archive(request, pk: int):
    return pane_action(
        request,
        pk,
        lambda: services.conversation_archive(conversation=pk, actor=request.user),
        success="Archived. It has left the default view; find it under Archived.",
    )


@require_POST
@agent_required
def unarchive(request, pk: int):
    return pane_action(
        request,
        pk,
        lambda: services.conversation_unarchive(conversation=pk, actor=request.user),
        success="Unarchived. It is back among the closed conversations.",
    )


def snooze_time(data) -> datetime:
    """The pane's choice: a preset, or a date and time in the business's time zone."""
    preset = data.get("preset")
    if preset:
        for key, _, moment in snooze.presets():
            if key == preset:
                return moment
        raise InvalidInput("Choose one of the snooze times offered.")
    try:
        moment = datetime.fromisoformat(data.get("until", ""))
    except ValueError:
        raise InvalidInput("Choose a date and time to snooze until.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=business_timezone())


@require_POST
@agent_required
def snooze_view(request, pk: int):
    return pane_action(
        request,
        pk,
        lambda: snooze.conversation_snooze(
            conversation=pk, until=snooze_time(request.POST), actor=request.user
        ),
        success=lambda conversation: (
            f"Snoozed until {snooze.describe(conversation.snoozed_until)}. "
            "It is in the Snoozed view until then, or until the contact writes."
        ),
    )


@require_POST
@agent_required
def unsnooze_view(request, pk: int):
    return pane_action(
        request,
        pk,
        lambda: snooze.conversation_unsnooze(conversation=pk, actor=request.user),
        success="Woken up: it is back in the inbox.",
    )


@require_POST
@agent_required
def availability_view(request):
    """The top bar's switch: available or away (an away agent gets no assignment
    from a flow's least-loaded pick)."""
    away = request.POST.get("away") == "yes"
    set_away(user=request.user, away=away)
    messages.success(
        request,
        "You are away: flows assign you nothing until you are back."
        if away
        else "You are available: flows may assign you conversations.",
    )
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        back = reverse("inbox:list")
    return redirect(back)


def expected_assignee(data):
    """The assignee the pane showed (``assignee_was``: an id, or empty for nobody);
    a form without it (an old page) is not checked."""
    if "assignee_was" not in data:
        return services.ANY
    was = data["assignee_was"]
    return int(was) if was.isdigit() and len(was) < 19 else None


@require_POST
@agent_required
def assign(request, pk: int):
    form = AssignForm(request.POST)

    def action():
        if not form.is_valid():
            raise ParleyError(" ".join(form.errors["assignee"]), code="invalid_input")
        assignee = form.cleaned_data["assignee"]
        services.conversation_assign(
            conversation=pk,
            assignee=assignee,
            actor=request.user,
            expected_assignee=expected_assignee(request.POST),
        )
        return assignee

    def message(assignee):
        if assignee is None:
            return "Unassigned."
        if assignee == request.user:
            return "Assigned to you."
        return f"Assigned to {agent_label(assignee)}."

    return pane_action(request, pk, action, success=message)


@require_POST
@agent_required
def tag_add(request, pk: int):
    name = request.POST.get("name", "")

    def add() -> tuple[Tag, bool]:
        had = ConversationTag.objects.filter(conversation_id=pk, tag__key=tag_key(name)).exists()
        return services.conversation_tag_add(conversation=pk, tag=name, actor=request.user), had

    return pane_action(
        request,
        pk,
        add,
        success=lambda added: (
            f"Tag “{added[0].name}” is already on it."
            if added[1]
            else f"Tag “{added[0].name}” added."
        ),
    )


@require_POST
@agent_required
def tag_remove(request, pk: int):
    name = request.POST.get("name", "")
    return pane_action(
        request,
        pk,
        lambda: services.conversation_tag_remove(conversation=pk, tag=name, actor=request.user),
        success=lambda removed: (
            f"Tag “{name.strip()}” removed." if removed else "That tag was not on it."
        ),
    )


@never_cache
@require_http_methods(["GET", "POST"])
@agent_required
def contact_edit(request, pk: int):
    """The pane with its contact's form open (name and attributes); POST saves it.
    A refusal keeps the form open with its errors."""
    conversation = load_conversation(pk)
    data = request.POST if request.method == "POST" else None
    form = ContactForm(data, contact=conversation.contact)
    if data is not None and form.is_valid():
        try:
            services.contact_update(
                contact=conversation.contact_id,
                name=form.cleaned_data["name"],
                attributes=form.cleaned_data["attributes"],
                seen=form.cleaned_data["seen"],
            )
        except ChangedMeanwhile as exc:
            # The editor's values stay in the form, now drawn against the contact as
            # it is: saving again keeps them, knowingly.
            conversation = load_conversation(pk)
            data = data.copy()
            data["seen"] = contact_seen(conversation.contact)
            form = ContactForm(data, contact=conversation.contact)
            form.is_valid()
            form.add_error(None, exc.detail)
        except ParleyError as exc:
            form.add_error(None, exc.detail)
        else:
            return pane_action(request, pk, lambda: None, success="Contact saved.")
    context = pane_context(request, conversation) | {"contact_form": form}
    if htmx_partial(request):
        return render(request, "inbox/pane.html", context)
    page = conversation_list(request=request, params=request.GET)
    context = list_context(request, page) | context | {"pane_open": True}
    return render(request, "inbox/inbox.html", context)


@require_POST
@agent_required
def read(request, pk: int):
    """The pane showed the contact's messages up to ``upto``: the agent's unread
    marker moves there (never back, never past now); when it moved, the page
    takes the marker off the row."""
    try:
        upto = datetime.fromisoformat(request.GET.get("upto", ""))
    except ValueError:
        return HttpResponse(status=204)
    if upto.tzinfo is None:
        return HttpResponse(status=204)
    moved = mark_read(agent=request.user, conversation_id=pk, upto=min(upto, timezone.now()))
    if not moved:
        return HttpResponse(status=204)
    # The row loses its marker in the page (stream.js); no list refresh for it.
    return trigger_client_event(HttpResponse(), "conversationRead", {"id": pk})


@never_cache
@require_GET
@agent_required
def home(request):
    """Where an agent lands: the inbox's default view, what needs them."""
    return redirect("inbox:list")


# --- bulk actions -----------------------------------------------------------------

BULK_VERBS = {"close": "closed", "archive": "archived", "assign": "assigned", "tag": "tagged"}
SHOW_REFUSALS = 10


def _bulk_targets(request, form) -> list[int]:
    if form.cleaned_data.get("scope") != "all":
        return form.cleaned_data["ids"]
    params = QueryDict(form.cleaned_data.get("filters") or "")
    filterset, errors = filtered_conversations(params=params, request=request)
    if errors:
        raise ParleyError("The filter is not valid: " + " ".join(errors))
    ids = list(filterset.qs.order_by("id").values_list("pk", flat=True)[: BULK_LIMIT + 1])
    if len(ids) > BULK_LIMIT:
        raise ParleyError(
            f"More than {BULK_LIMIT} conversations match the filter; bulk actions handle "
            f"at most {BULK_LIMIT} at a time. Narrow the filter and try again."
        )
    if not ids:
        raise ParleyError("No conversations match the filter.")
    return ids


def _bulk_step(request, form, pk: int) -> None:
    action = form.cleaned_data["action"]
    if action == "close":
        services.conversation_close(conversation=pk, actor=request.user)
    elif action == "archive":
        services.conversation_archive(conversation=pk, actor=request.user)
    elif action == "assign":
        services.conversation_assign(
            conversation=pk, assignee=form.cleaned_data["assignee_user"], actor=request.user
        )
    else:
        services.conversation_tag_add(
            conversation=pk, tag=form.cleaned_data["tag"], actor=request.user
        )


def refusal_groups(refused: list[tuple[int, ParleyError | None]]) -> dict[tuple, list[int]]:
    """The refused rows grouped by reason: a refused status change by the status
    that refuses it ("they are In a flow"), another refusal by its sentence, a
    missing row as such. One query for the statuses."""
    statuses = dict(
        Conversation.objects.filter(pk__in=[pk for pk, _ in refused]).values_list("pk", "status")
    )
    groups: dict[tuple, list[int]] = {}
    for pk, refusal in refused:
        status = statuses.get(pk)
        if status is None:
            reason = ("missing", "")
        elif isinstance(refusal, IllegalTransition):
            reason = ("status", STATUS_LABELS.get(status, status))
        else:
            reason = ("other", refusal.detail.rstrip("."))
        groups.setdefault(reason, []).append(pk)
    return groups


def bulk_summary(form, done: int, refused: list[tuple[int, ParleyError | None]]) -> str:
    """ "40 closed; 45 not closed: they are Closed (#1, #2, … and 35 more)." """
    action = form.cleaned_data["action"]
    verb = BULK_VERBS[action]
    if action == "assign":
        assignee = form.cleaned_data["assignee_user"]
        verb = f"assigned to {agent_label(assignee)}" if assignee else "unassigned"
    elif action == "tag":
        verb = f"tagged “{form.cleaned_data['tag']}”"
    parts = [f"{done} {verb}"]
    for (kind, text), pks in refusal_groups(refused).items():
        one = len(pks) == 1
        if kind == "status":
            reason = f"{'it is' if one else 'they are'} {text}"
        elif kind == "missing":
            reason = "it does not exist" if one else "they do not exist"
        else:
            reason = text
        shown = ", ".join(f"#{pk}" for pk in pks[:SHOW_REFUSALS])
        if len(pks) > SHOW_REFUSALS:
            shown += f" and {len(pks) - SHOW_REFUSALS} more"
        parts.append(f"{len(pks)} not {verb}: {reason} ({shown})")
    return "; ".join(parts) + "."


@require_POST
@agent_required
def bulk(request):
    """Apply one action to the selected rows (or to all matching the filter), each
    row through the service on its own; report successes and refusals."""
    form = BulkActionForm(request.POST, user=request.user)
    done, refused = 0, []
    if not form.is_valid():
        notice, level = " ".join(e for errors in form.errors.values() for e in errors), "error"
    else:
        try:
            ids = _bulk_targets(request, form)
        except ParleyError as exc:
            notice, level = exc.detail, "error"
        else:
            existing = set(Conversation.objects.filter(pk__in=ids).values_list("pk", flat=True))
            for pk in ids:
                if pk not in existing:
                    refused.append((pk, None))
                    continue
                try:
                    _bulk_step(request, form, pk)
                    done += 1
                except ParleyError as exc:
                    refused.append((pk, exc))
                except Conversation.DoesNotExist:  # deleted a moment ago
                    refused.append((pk, None))
            notice = bulk_summary(form, done, refused)
            level = "error" if not done else "warning" if refused else "success"
    if not htmx_partial(request):
        messages.add_message(
            request,
            {"error": messages.ERROR, "warning": messages.WARNING}.get(level, messages.SUCCESS),
            notice,
        )
        filters = QueryDict(request.POST.get("filters", ""))
        return redirect(list_url(canonical_query(filters)))
    response = render(
        request, "inbox/inbox.html#bulk-result", {"notice": notice, "notice_level": level}
    )
    if done or refused:  # the list refreshes; the ticked rows stay ticked (inbox.js)
        changed(response, source="bulk")
    return response


# --- the contact page -------------------------------------------------------------


@never_cache
@require_GET
@agent_required
def contact(request, pk: int):
    """A contact and its conversation history, newest first (PRODUCT.md §5)."""
    contact = get_object_or_404(Contact, pk=pk)
    history = list(contact_history(contact=contact))
    return render(request, "inbox/contact.html", {"contact": contact, "history": history})


@never_cache
@require_GET
@agent_required
def contacts(request):
    """``/contacts/``: find a contact by name (words in any order), external id or
    part of a phone number; newest first, "More" pages by keyset."""
    term = request.GET.get("q", "")[:200]
    page = contact_search(term=term, cursor=request.GET.get("cursor", ""))
    more_url = ""
    if page.next_cursor:
        query = QueryDict(mutable=True)
        if term:
            query["q"] = term
        query["cursor"] = page.next_cursor
        more_url = f"{reverse('inbox:contacts')}?{query.urlencode()}"
    context = {"term": term, "page": page, "more_url": more_url}
    return render(request, "inbox/contacts.html", context, status=400 if page.error else 200)
