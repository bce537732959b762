"""The flows pages: start a flow on a conversation (the pane's form), and
broadcasts (create, follow the progress, read the counts).

Views parse, call a service or a selector, and render. Refusals are shown as a
message in a 200 fragment (htmx does not swap 4xx), never a 500.
"""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from conversations.exceptions import ConversationOngoing, ParleyError
from conversations.models import Conversation

from . import broadcasts, engine, selectors
from .decorators import agent_required
from .forms import BroadcastForm, StartFlowForm
from .models import Broadcast, Trigger, segment_label

CHANGED = "conversationChanged"


def _first_error(form) -> str:
    for errors in form.errors.values():
        return errors[0]
    return "The form is not valid."


@agent_required
@require_http_methods(["GET", "POST"])
def start_flow(request, conversation_id: int):
    """``/flows/start/<conversation_id>/``: GET the form (a page of its own, or the
    fragment with htmx); POST starts the chosen flow, with or without priority."""
    conversation = get_object_or_404(
        Conversation.objects.select_related("contact"), pk=conversation_id
    )
    origin = request.POST.get("origin", "pane") if request.method == "POST" else "page"
    notice, level = "", "info"
    form = StartFlowForm(request.POST or None)
    if request.method == "POST":
        if not form.is_valid():
            notice, level = _first_error(form), "error"
        else:
            flow = form.cleaned_data["flow"]
            try:
                run = engine.flow_start(
                    flow=flow,
                    conversation=conversation,
                    has_priority=form.cleaned_data["has_priority"],
                    trigger=Trigger.AGENT,
                    actor=request.user,
                )
            except ConversationOngoing as exc:
                notice, level = _ongoing_elsewhere(conversation) or exc.detail, "error"
            except ParleyError as exc:
                notice, level = exc.detail, "error"
            else:
                run.conversation.refresh_from_db(fields=["status"])
                status = run.conversation.get_status_display()
                if run.conversation_id != conversation.pk:
                    notice = format_html(
                        "Flow “{}” started on a new conversation, "
                        '<a href="{}">#{}</a>; it is now {}.',
                        flow.name,
                        reverse("inbox:pane", args=[run.conversation_id]),
                        run.conversation_id,
                        status,
                    )
                else:
                    notice = f"Flow “{flow.name}” started; the conversation is now {status}."
                level = "success"
                conversation.refresh_from_db()
        # With htmx from the pane: the pane re-renders itself on conversationChanged
        # and shows this message.
        if not request.htmx or origin == "pane":
            messages.add_message(
                request, messages.ERROR if level == "error" else messages.SUCCESS, notice
            )
        if not request.htmx:
            return redirect("flows:start_flow", conversation_id=conversation.pk)
    context = {
        "conversation": conversation,
        "flows": list(selectors.startable_flows()),
        "notice": notice,
        "notice_level": level,
        "origin": origin,
        "has_priority": request.POST.get("has_priority") == "on",
    }
    if request.htmx and request.GET.get("part") == "status":
        context["run"] = selectors.active_run_for(conversation)
        return render(request, "flows/start_flow_page.html#conversation-status", context)
    if request.htmx:
        response = render(request, "flows/partials/start_flow.html", context)
        if request.method == "POST":
            trigger_client_event(response, CHANGED, {"conversation": conversation.pk})
        return response
    context["run"] = selectors.active_run_for(conversation)
    return render(request, "flows/start_flow_page.html", context)


def _ongoing_elsewhere(conversation: Conversation):
    """A flow refused on a closed conversation because the contact has another one
    ongoing: say so, with a link to that one."""
    if not conversation.is_closed:
        return None
    current = conversation.contact.conversations.open().first()
    if current is None:
        return None
    return format_html(
        "This conversation is closed, so the flow would start on {}’s current "
        'conversation, <a href="{}">#{}</a>, which is {}: a flow can only interrupt it '
        "when started with priority.",
        conversation.contact.display_name,
        reverse("inbox:pane", args=[current.pk]),
        current.pk,
        current.get_status_display().lower(),
    )


@agent_required
@require_GET
def index(request):
    """``/flows/``: the flows, the recent broadcasts and the form for a new one."""
    return render(request, "flows/index.html", _index_context(request, BroadcastForm()))


def _index_context(request, form, notice: str = "") -> dict:
    return {
        "flows": list(selectors.flow_overview()),
        "broadcasts": list(selectors.recent_broadcasts()),
        "form": form,
        "notice": notice,
        "may_broadcast": broadcasts.may_broadcast(request.user),
        "not_permitted": broadcasts.BroadcastNotPermitted.default_detail,
    }


@agent_required
@require_GET
def broadcast_preview(request):
    """The new-broadcast form's count (htmx, on every change of the form): how many
    contacts the segment reaches and how many would be skipped as ongoing."""
    form = BroadcastForm(request.GET)
    form.is_valid()
    data = form.cleaned_data
    context = {"has_priority": data.get("has_priority", False)}
    try:
        for name in ("segment", "tag", "channel", "status"):
            if form.has_error(name):
                raise ParleyError(form.errors[name][0])
        reach, skipped = broadcasts.broadcast_preview(
            segment=data["segment"],
            value=form.segment_value(),
            has_priority=context["has_priority"],
        )
    except ParleyError as exc:
        context["error"] = exc.detail
    else:
        label = segment_label(data["segment"], form.segment_value())
        context |= {"reach": reach, "skipped": skipped, "sent": reach - skipped, "label": label}
    return render(request, "flows/index.html#broadcast-preview", context)


@agent_required
@require_POST
def broadcast_create(request):
    if not broadcasts.may_broadcast(request.user):
        notice = broadcasts.BroadcastNotPermitted.default_detail
        context = _index_context(request, BroadcastForm(), notice)
        return render(request, "flows/index.html", context, status=403)
    form = BroadcastForm(request.POST)
    if not form.is_valid():
        return render(
            request, "flows/index.html", _index_context(request, form, _first_error(form))
        )
    try:
        broadcast = broadcasts.broadcast_create(
            flow=form.cleaned_data["flow"],
            segment=form.cleaned_data["segment"],
            segment_value=form.segment_value(),
            has_priority=form.cleaned_data["has_priority"],
            actor=request.user,
        )
    except ParleyError as exc:
        return render(request, "flows/index.html", _index_context(request, form, exc.detail))
    messages.success(request, f"Broadcast #{broadcast.pk} queued for {broadcast.total} contacts.")
    return redirect("flows:broadcast", pk=broadcast.pk)


@agent_required
@require_GET
def broadcast_detail(request, pk: int):
    """``/flows/broadcasts/<id>/``: the progress bar polls (htmx) while it runs."""
    broadcast = get_object_or_404(Broadcast.objects.select_related("flow", "created_by"), pk=pk)
    context = {
        "broadcast": broadcast,
        "failures": list(selectors.broadcast_failures(broadcast)),
        "catching_up": selectors.broadcast_catching_up(broadcast),
        "progress_url": reverse("flows:broadcast", args=[broadcast.pk]),
    }
    if request.htmx:
        return render(request, "flows/broadcast_detail.html#progress", context)
    return render(request, "flows/broadcast_detail.html", context)
