"""Saved replies in the inbox: the agents' page (their own, and the shared ones),
the composer's ``/`` search and the insertion with the placeholders filled
(``conversations.saved_replies``)."""

from django import forms
from django.contrib import messages
from django.db.models import Q
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from conversations import saved_replies
from conversations.models import Conversation, SavedReply
from flows.decorators import agent_required

SEARCH_LIMIT = 8


class SavedReplyForm(forms.ModelForm):
    class Meta:
        model = SavedReply
        fields = ("title", "body", "shared")
        widgets = {"body": forms.Textarea(attrs={"rows": 6})}


def visible_to(user):
    return SavedReply.objects.filter(Q(owner=user) | Q(shared=True))


def _own(request, reply_id: int) -> SavedReply:
    return get_object_or_404(SavedReply, pk=reply_id, owner=request.user)


@never_cache
@require_GET
@agent_required
def index(request):
    replies = visible_to(request.user).select_related("owner")
    return render(
        request,
        "inbox/saved_replies.html",
        {"replies": replies, "placeholders": saved_replies.PLACEHOLDERS},
    )


@never_cache
@require_http_methods(["GET", "POST"])
@agent_required
def edit(request, reply_id: int | None = None):
    """Create a saved reply, or edit one of the agent's own."""
    reply = _own(request, reply_id) if reply_id else SavedReply(owner=request.user)
    form = SavedReplyForm(request.POST or None, instance=reply)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved reply “{reply.title}” saved.")
        return redirect("inbox:saved_replies")
    return render(
        request,
        "inbox/saved_reply_form.html",
        {"form": form, "reply": reply, "placeholders": saved_replies.PLACEHOLDERS},
        status=400 if form.errors else 200,
    )


@require_POST
@agent_required
def delete(request, reply_id: int):
    reply = _own(request, reply_id)
    reply.delete()
    messages.success(request, f"Saved reply “{reply.title}” deleted.")
    return redirect("inbox:saved_replies")


@never_cache
@require_GET
@agent_required
def search(request):
    """The composer's ``/`` list: titles (then bodies) containing the query."""
    query = request.GET.get("q", "").strip()[:100]
    replies = visible_to(request.user)
    if query:
        replies = replies.filter(Q(title__icontains=query) | Q(body__icontains=query))
    rows = replies.values("pk", "title", "body")[:SEARCH_LIMIT]
    return JsonResponse(
        {"results": [{"id": r["pk"], "title": r["title"], "preview": r["body"][:80]} for r in rows]}
    )


@never_cache
@require_GET
@agent_required
def fill(request, pk: int, reply_id: int):
    """A saved reply's body with the placeholders filled for this conversation and
    agent (plain text: the composer shows it as text)."""
    reply = visible_to(request.user).filter(pk=reply_id).first()
    if reply is None:
        raise Http404("No such saved reply.")
    conversation = get_object_or_404(Conversation.objects.select_related("contact"), pk=pk)
    text = saved_replies.fill(reply.body, conversation=conversation, agent=request.user)
    return JsonResponse({"text": text})
