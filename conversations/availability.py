"""Agents' available/away switch (the inbox's top bar) and the least-loaded pick of
the flows' *assign* step (PRODUCT.md §7). No row means available."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import Count, Q

from .transitions import Status

# What counts as an agent's load: open conversations waiting on them.
LOAD_STATUSES = (Status.NEW, Status.IN_PROGRESS)


class Availability(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="availability",
    )
    is_away = models.BooleanField(default=False)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "conversations"
        verbose_name_plural = "availabilities"

    def __str__(self) -> str:
        return f"{self.user}: {'away' if self.is_away else 'available'}"


def is_away(user) -> bool:
    return Availability.objects.filter(user=user, is_away=True).exists()


def set_away(*, user, away: bool) -> None:
    Availability.objects.update_or_create(user=user, defaults={"is_away": away})


def least_loaded_agent():
    """The active, available agent with the fewest New or In progress conversations
    assigned (archived ones aside); ties go to the oldest account. None if nobody
    is available."""
    load = Count(
        "assigned_conversations",
        filter=Q(assigned_conversations__status__in=LOAD_STATUSES),
    )
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .exclude(availability__is_away=True)
        .annotate(load=load)
        .order_by("load", "pk")
        .first()
    )
