"""WhatsApp Cloud API records: each webhook call as it arrived (processed in the
background), each WhatsApp message known by its id (inbound: the dedupe key;
outbound: its delivery receipts), and the approved message templates."""

import re

from django.db import models

from ..models import Channel


class WhatsAppEvent(models.Model):
    """One verified webhook POST, kept until the background task has processed it
    (a paused channel's events wait here)."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="whatsapp_events")
    body = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["channel", "id"],
                condition=models.Q(processed_at__isnull=True),
                name="waevent_unprocessed",
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel.slug} event {self.pk}"


class Receipt(models.IntegerChoices):
    """Delivery receipts in the order they may only move forward (failed wins)."""

    NONE = 0, "Not sent yet"
    SENT = 1, "Sent"
    DELIVERED = 2, "Delivered"
    READ = 3, "Read"
    FAILED = 4, "Failed"


class WhatsAppMessage(models.Model):
    """A WhatsApp message id (``wamid``) and what Parley knows of it. Its unique
    constraint is the dedupe of inbound messages (Meta delivers a webhook again
    until it is answered 200); for outbound ones it carries the receipts, which may
    arrive before the Graph API's answer has linked the id to its message."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+")
    wamid = models.CharField(max_length=200, unique=True)
    message = models.OneToOneField(
        "conversations.Message",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="whatsapp",
    )
    receipt = models.PositiveSmallIntegerField(choices=Receipt.choices, default=Receipt.NONE)
    error = models.CharField(max_length=500, blank=True)
    media = models.FileField(upload_to="whatsapp/%Y/%m/", blank=True)
    media_type = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.wamid


_PARAM = re.compile(r"\{\{(\d+)\}\}")


class WhatsAppTemplate(models.Model):
    """An approved message template: the only thing WhatsApp lets a business send to
    a contact who has not written in the last 24 hours."""

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(max_length=512)
    language = models.CharField(max_length=15, default="en_US")
    body = models.TextField(help_text="The body text, with {{1}}, {{2}}… for its parameters.")
    status = models.CharField(max_length=20, default="APPROVED")

    class Meta:
        ordering = ["channel", "name", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "name", "language"], name="watemplate_unique_name_language"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"

    @property
    def param_count(self) -> int:
        return max((int(n) for n in _PARAM.findall(self.body)), default=0)

    def render(self, params: list[str]) -> str:
        return _PARAM.sub(
            lambda m: params[int(m.group(1)) - 1] if int(m.group(1)) <= len(params) else m[0],
            self.body,
        )
