"""The inbox's settings: one row that an admin edits in the Django admin.

Read on hot paths (every close, every inbound message to a resolved conversation,
every inbox page for its tabs), so each process remembers the row for a few seconds
(``Memo``), forgotten at once when it is saved here and seen within
``CACHE_SECONDS`` when another process saves it.
"""

import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from .memo import Memo

CACHE_SECONDS = 10
DEFAULT_QUESTION = (
    "How would you rate the help you received? Answer with a number from 1 (poor) to 5 (excellent)."
)
TIME_ZONES = frozenset(zoneinfo.available_timezones())


def _valid_time_zone(name: str) -> None:
    if name not in TIME_ZONES:
        raise ValidationError(f"“{name}” is not a known time zone (e.g. Europe/Paris).")


def _default_time_zone() -> str:
    return settings.TIME_ZONE


class InboxSettings(models.Model):
    csat_enabled = models.BooleanField(
        "satisfaction survey (CSAT)",
        default=False,
        help_text=(
            "When an agent closes a conversation they replied in, it becomes Resolved and the "
            "contact is asked for a rating from 1 to 5; the answer (or the window's end) "
            "closes it."
        ),
    )
    csat_question = models.CharField("survey question", max_length=500, default=DEFAULT_QUESTION)
    csat_window_hours = models.PositiveIntegerField(
        "survey window (hours)",
        default=24,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 30)],
        help_text="A resolved conversation with no answer by then is closed without a rating.",
    )
    archive_on_close = models.BooleanField(
        default=False, help_text="Archive every conversation as it closes, whatever closes it."
    )
    auto_close_after_hours = models.PositiveIntegerField(
        "auto-close after (hours)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 365)],
        help_text=(
            "Close In progress conversations with no message for this long (done by the "
            "system). Empty: never."
        ),
    )
    time_zone = models.CharField(
        "business time zone",
        max_length=64,
        default=_default_time_zone,
        validators=[_valid_time_zone],
        help_text="An IANA name such as Europe/Paris: dates and business hours follow it.",
    )

    class Meta:
        app_label = "conversations"
        verbose_name = verbose_name_plural = "inbox settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="inbox_settings_single_row"),
            models.CheckConstraint(
                condition=Q(csat_window_hours__gte=1), name="inbox_settings_csat_window"
            ),
            models.CheckConstraint(
                condition=Q(auto_close_after_hours__isnull=True) | Q(auto_close_after_hours__gte=1),
                name="inbox_settings_auto_close",
            ),
        ]

    def __str__(self) -> str:
        return "Inbox settings"

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    @property
    def csat_window(self) -> timedelta:
        return timedelta(hours=self.csat_window_hours)

    @property
    def auto_close_after(self) -> timedelta | None:
        hours = self.auto_close_after_hours
        return timedelta(hours=hours) if hours else None


_memo = Memo(seconds=CACHE_SECONDS, watch=[InboxSettings])


def _load() -> InboxSettings:
    return InboxSettings.objects.filter(pk=1).first() or InboxSettings(pk=1)


def inbox_settings() -> InboxSettings:
    """The settings (defaults until an admin saves them). Do not modify the instance."""
    return _memo.get(None, _load)


def business_timezone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(inbox_settings().time_zone)


def forget() -> None:
    _memo.forget()
