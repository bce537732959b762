"""Connectors: API tokens, the channels messages leave through, and the record of
each outbound delivery.

The core (``conversations``) knows nothing of these: it sends ``hooks.message_sent``
and ``connectors.delivery`` decides how the message reaches its channel.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiToken(models.Model):
    """A bearer token for the integration API. Only a SHA-256 digest of the secret
    is stored: the token itself is shown once, when it is created."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for.")
    # The first characters of the token, to recognise it in lists (not secret).
    prefix = models.CharField(max_length=12, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        label = f"{self.prefix}… ({self.user})"
        return f"{label} {self.name}".strip() if self.name else label


class ChannelKind(models.TextChoices):
    WEB = "web", "Web chat"
    WEBHOOK = "webhook", "Webhook"
    WHATSAPP = "whatsapp", "WhatsApp"
    EMAIL = "email", "Email"


class Channel(models.Model):
    """How outbound messages reach the contacts of one channel (``Contact.channel``).

    ``web``: the contact's chat page shows them (it polls). ``webhook``: each
    outbound message is POSTed as JSON to ``webhook_url`` in the background.
    ``whatsapp``: the Cloud API (``connectors/whatsapp/``). ``email``: IMAP/SMTP.
    Secrets come from ``secret(name)``; a paused channel holds its outbound messages.
    A contact channel without a Channel row gets no delivery (the API's client
    reads replies through ``GET /api/v1/conversations/{id}``).
    """

    slug = models.SlugField(max_length=32, unique=True)
    kind = models.CharField(max_length=10, choices=ChannelKind.choices, default=ChannelKind.WEB)
    webhook_url = models.URLField(blank=True, help_text="Webhook channels: where to POST.")
    webhook_secret = models.CharField(
        max_length=200,
        blank=True,
        help_text=(
            "Optional. When set, each POST carries X-Parley-Signature: sha256=<HMAC-SHA256 "
            "of the body with this secret>, so the receiver can check it came from Parley."
        ),
    )
    identity_secret = models.CharField(
        max_length=200,
        blank=True,
        help_text=(
            "Web chats, optional. When set, a site can open the chat as its logged-in "
            "customer: /chat/<channel>/?identifier=<id>&identifier_hash=<hex HMAC-SHA256 "
            "of the id with this secret>&name=<name>. The id becomes the contact's "
            "external id; a wrong hash is refused."
        ),
    )
    is_active = models.BooleanField(default=True)
    is_paused = models.BooleanField(
        default=False,
        help_text=(
            "Paused: messages from contacts are kept and processed when the channel is "
            "resumed (a web chat refuses them with a sentence); outbound messages are held "
            "and sent on resume."
        ),
    )
    # name -> "env:VAR" or a Fernet token (connectors.secrets); read with secret(name).
    secrets = models.JSONField(default=dict, blank=True, editable=False)
    phone_number_id = models.CharField(
        max_length=40, blank=True, help_text="WhatsApp: the phone number id (Meta app, API setup)."
    )
    business_account_id = models.CharField(
        max_length=40,
        blank=True,
        help_text="WhatsApp: the WhatsApp Business Account id (to sync message templates).",
    )
    api_base_url = models.URLField(
        blank=True,
        help_text="WhatsApp: the Graph API base URL; blank for the WHATSAPP_API_BASE_URL setting.",
    )
    # Health, shown in the admin.
    last_received_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind=ChannelKind.WEBHOOK) | ~Q(webhook_url=""),
                name="channel_webhook_has_url",
                violation_error_message="A webhook channel needs a URL.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.slug} ({self.get_kind_display()})"

    def secret(self, name: str) -> str:
        """The named secret in clear ("" when none is set); ``SecretUnavailable`` when
        it is set but cannot be read (its variable is unset, the key changed)."""
        from .secrets import unseal

        stored = (self.secrets or {}).get(name, "")
        return unseal(stored, name=name.replace("_", " ")) if stored else ""

    def set_secret(self, name: str, value: str) -> None:
        from .secrets import seal

        self.secrets = {**(self.secrets or {}), name: seal(value)}

    @property
    def graph_base_url(self) -> str:
        return (self.api_base_url or settings.WHATSAPP_API_BASE_URL).rstrip("/")


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    HELD = "held", "Held (channel paused)"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class DeliveryQuerySet(models.QuerySet):
    def unclaimed(self, now):
        """Pending and held by no run of ``connectors.tasks.deliver`` at ``now``."""
        return self.filter(status=DeliveryStatus.PENDING).filter(
            models.Q(claimed_until__isnull=True) | models.Q(claimed_until__lt=now)
        )


class Delivery(models.Model):
    """One outbound message on its way to a webhook or WhatsApp channel: attempts and
    the last error, so failures are visible on the message."""

    message = models.OneToOneField(
        "conversations.Message", on_delete=models.CASCADE, related_name="delivery"
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # The request body for channels that need one prepared when the message is sent
    # (WhatsApp: text or template), empty otherwise.
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Until when a run of ``connectors.tasks.deliver`` is sending it: a second run (a
    # re-queued task, see ``connectors.delivery.requeue_stalled``) leaves it alone.
    claimed_until = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["status", "-created_at"], name="delivery_by_status")]

    def __str__(self) -> str:
        return f"message {self.message_id} → {self.channel.slug}: {self.status}"


class RateCounter(models.Model):
    """One fixed-window counter of ``connectors.ratelimit`` (the PostgreSQL store):
    moved on only by its ``INSERT … ON CONFLICT DO UPDATE``, never through the ORM."""

    key = models.CharField(max_length=200, primary_key=True)
    window_ends_at = models.DateTimeField()
    count = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["window_ends_at"], name="ratecounter_window_ends")]

    def __str__(self) -> str:
        return f"{self.key}: {self.count} until {self.window_ends_at:%H:%M:%S}"


from .mail.models import MailAttachment, Mailbox, MailMessage  # noqa: E402, F401
from .whatsapp.models import WhatsAppEvent, WhatsAppMessage, WhatsAppTemplate  # noqa: E402, F401
