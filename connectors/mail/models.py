"""The email channel's own rows: a channel's mailbox (where mail is fetched and sent,
and how the fetching goes), the email headers of each message that went through
it, and the attachments it brought."""

import os

from django.core.exceptions import ValidationError
from django.db import models


class Security(models.TextChoices):
    SSL = "ssl", "TLS from the start (IMAPS 993, SMTPS 465)"
    STARTTLS = "starttls", "STARTTLS (IMAP 143, SMTP 587)"
    NONE = "none", "None (a local test server only)"


class Mailbox(models.Model):
    """The mailbox of one email channel: IMAP to fetch from, SMTP to send through.

    The fetcher keeps its place with ``uidvalidity`` and ``last_uid``, updated in
    the transaction that stores each message, so a restart fetches nothing twice."""

    channel = models.OneToOneField(
        "connectors.Channel",
        on_delete=models.CASCADE,
        related_name="mailbox",
        limit_choices_to={"kind": "email"},
    )
    address = models.EmailField(
        help_text="The support address (From of every reply; replies come back to it)."
    )
    from_name = models.CharField(
        max_length=100,
        default="Parley",
        help_text='Shown in From: "Alice at <this>"; alone for flows and broadcasts.',
    )
    imap_host = models.CharField(max_length=255)
    imap_port = models.PositiveIntegerField(default=993)
    imap_security = models.CharField(max_length=10, choices=Security, default=Security.SSL)
    imap_user = models.CharField(max_length=255)
    imap_folder = models.CharField(max_length=255, default="INBOX")
    smtp_host = models.CharField(max_length=255)
    smtp_port = models.PositiveIntegerField(default=587)
    smtp_security = models.CharField(max_length=10, choices=Security, default=Security.STARTTLS)
    smtp_user = models.CharField(max_length=255, blank=True, help_text="Empty: the IMAP user.")
    password_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="The name of the environment variable holding the mailbox's password "
        "(used for IMAP and SMTP), e.g. PARLEY_MAIL_PASSWORD. Empty: the password stored "
        "(encrypted) on the email channel.",
    )
    poll_seconds = models.PositiveIntegerField(
        default=60, help_text="How often to look for mail when the server has no IDLE."
    )
    uidvalidity = models.BigIntegerField(null=True, blank=True, editable=False)
    last_uid = models.BigIntegerField(default=0, editable=False)
    last_received_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name_plural = "mailboxes"

    def __str__(self) -> str:
        return f"{self.address} ({self.channel.slug})"

    def clean(self) -> None:
        if self.channel_id and self.channel.kind != "email":
            raise ValidationError({"channel": "A mailbox belongs to a channel of kind Email."})
        if self.password_env and not os.environ.get(self.password_env):
            raise ValidationError(
                {"password_env": f"The environment variable {self.password_env} is not set."}
            )
        if not self.password_env and self.channel_id and not self.channel.secret("password"):
            raise ValidationError(
                {
                    "password_env": "Name an environment variable, or store the password on the "
                    "email channel."
                }
            )

    @property
    def password(self) -> str:
        """From the named environment variable, else the channel's encrypted secret."""
        if self.password_env:
            return os.environ.get(self.password_env, "")
        return self.channel.secret("password")

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


class MailMessage(models.Model):
    """The email behind one message, inbound or outbound: its Message-ID (unique per
    channel: the second guard against fetching a message twice) and the threading
    headers; for inbound mail the sanitised HTML shown in the pane and the quoted
    history trimmed from it."""

    message = models.OneToOneField(
        "conversations.Message", on_delete=models.CASCADE, related_name="mail"
    )
    channel = models.ForeignKey(
        "connectors.Channel", on_delete=models.CASCADE, related_name="mail_messages"
    )
    msgid = models.CharField("Message-ID", max_length=998)
    subject = models.CharField(max_length=998, blank=True)
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.TextField(blank=True)
    html = models.TextField(blank=True, help_text="Sanitised (nh3) at fetch time.")
    quoted_html = models.TextField(blank=True, help_text="Sanitised (nh3) at fetch time.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "msgid"], name="mailmessage_unique_per_channel"
            ),
        ]

    def __str__(self) -> str:
        return f"<{self.msgid}>"


class MailAttachment(models.Model):
    mail = models.ForeignKey(MailMessage, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to="mail/%Y/%m/")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255)
    size = models.PositiveIntegerField()

    def __str__(self) -> str:
        return self.filename
