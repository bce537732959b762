"""Reads for the flows pages. Each returns what a page needs in a fixed number of
queries."""

from django.db.models import Count, Q

from .models import Broadcast, BroadcastDelivery, Flow, FlowRun


def startable_flows():
    """Active flows, for the "Start flow" form and the broadcast form."""
    return Flow.objects.filter(is_active=True).order_by("name")


def flow_overview():
    """Every flow with its step count and active runs (one query)."""
    return Flow.objects.annotate(
        step_count=Count("steps", distinct=True),
        active_runs=Count("runs", filter=Q(runs__state__in=["running", "waiting"]), distinct=True),
    ).order_by("name")


def recent_broadcasts(limit: int = 20):
    return Broadcast.objects.select_related("flow", "created_by").order_by("-created_at", "-id")[
        :limit
    ]


def broadcast_failures(broadcast: Broadcast, limit: int = 20):
    """The first failed deliveries with their reasons (one query)."""
    return (
        BroadcastDelivery.objects.filter(broadcast=broadcast, outcome="failed")
        .select_related("contact")
        .order_by("id")[:limit]
    )


def broadcast_catching_up(broadcast: Broadcast) -> bool:
    """A running broadcast with a chunk past its lease: a worker stopped half-way and
    its part is being picked up again (one query, only while it runs)."""
    return broadcast.is_running and broadcast.chunks.stalled().exists()


def active_run_for(conversation) -> FlowRun | None:
    return FlowRun.objects.active().filter(conversation=conversation).select_related("flow").first()
