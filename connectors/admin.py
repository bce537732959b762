from django import forms
from django.contrib import admin, messages

from conversations.exceptions import ParleyError

from .delivery import channel_resume, delivery_retry
from .models import (
    ApiToken,
    Channel,
    ChannelKind,
    Delivery,
    DeliveryStatus,
    Mailbox,
    WhatsAppTemplate,
)
from .tokens import token_fill, token_revoke
from .whatsapp.graph import GraphError
from .whatsapp.templates import templates_sync


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["__str__", "user", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name"]
        return ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        # The owner of an existing token never changes; revoke it and make another.
        return [*self.readonly_fields, "user"] if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        secret = token_fill(obj)
        obj.save()
        self.message_user(
            request,
            f"New API token for {obj.user}: {secret} — copy it now, it will not be shown again.",
            messages.WARNING,
        )

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            token_revoke(token=token)
            count += 1
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)


# The secrets a channel may hold (``Channel.secret(name)``), with what each is for.
SECRET_FIELDS = {
    "app_secret": "WhatsApp: the Meta app's App secret (signs every webhook call).",
    "access_token": "WhatsApp: a system user's access token for the Graph API.",
    "verify_token": "WhatsApp: any string; type the same in Meta's webhook settings.",
    "password": "Email: the mailbox password.",
}
KEEP = " Leave blank to keep the stored value; write env:NAME to read it from $NAME."


class ChannelForm(forms.ModelForm):
    """Write-only secret fields: never shown again after saving."""

    clear_secrets = forms.MultipleChoiceField(
        choices=[(name, name.replace("_", " ")) for name in SECRET_FIELDS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Tick to remove a stored secret.",
    )

    class Meta:
        model = Channel
        fields = [
            "slug",
            "kind",
            "is_active",
            "is_paused",
            "webhook_url",
            "webhook_secret",
            "identity_secret",
            "phone_number_id",
            "business_account_id",
            "api_base_url",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = self.instance.secrets or {}
        for name in SECRET_FIELDS:
            state = "set" if name in stored else "not set"
            self.fields[name].label = f"{name.replace('_', ' ').capitalize()} ({state})"

    def clean(self):
        cleaned = super().clean()
        for name in SECRET_FIELDS:
            value = cleaned.get(name, "")
            if value.startswith("env:") and not value.removeprefix("env:").isidentifier():
                self.add_error(name, "Write env: followed by a variable name, e.g. env:WA_TOKEN.")
        kind = cleaned.get("kind")
        if kind == ChannelKind.WHATSAPP and not cleaned.get("phone_number_id"):
            self.add_error("phone_number_id", "A WhatsApp channel needs its phone number id.")
        return cleaned

    def save(self, commit=True):
        channel = super().save(commit=False)
        channel.secrets = {
            k: v
            for k, v in (channel.secrets or {}).items()
            if k not in self.cleaned_data["clear_secrets"]
        }
        for name in SECRET_FIELDS:
            if self.cleaned_data.get(name):
                channel.set_secret(name, self.cleaned_data[name])
        if commit:
            channel.save()
        return channel


for _name, _help in SECRET_FIELDS.items():
    ChannelForm.base_fields[_name] = ChannelForm.declared_fields[_name] = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_help + KEEP,
    )


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["slug", "kind", "is_active", "is_paused", "last_received_at", "health"]
    list_filter = ["kind", "is_active", "is_paused"]
    search_fields = ["slug"]
    readonly_fields = ["last_received_at", "last_error", "last_error_at", "webhook_path"]
    actions = ["pause", "resume", "sync_templates"]
    fieldsets = [
        (None, {"fields": ["slug", "kind", "is_active", "is_paused"]}),
        ("Webhook", {"fields": ["webhook_url", "webhook_secret"]}),
        ("Web chat", {"fields": ["identity_secret"]}),
        (
            "WhatsApp",
            {"fields": ["webhook_path", "phone_number_id", "business_account_id", "api_base_url"]},
        ),
        ("Secrets (write-only)", {"fields": [*SECRET_FIELDS, "clear_secrets"]}),
        ("Health", {"fields": ["last_received_at", "last_error", "last_error_at"]}),
    ]

    @admin.display(description="Last error")
    def health(self, channel: Channel) -> str:
        if not channel.last_error:
            return "OK"
        return f"{channel.last_error_at:%Y-%m-%d %H:%M}: {channel.last_error}"

    @admin.display(description="WhatsApp webhook URL (callback URL in Meta's settings)")
    def webhook_path(self, channel: Channel) -> str:
        if not channel.pk or channel.kind != ChannelKind.WHATSAPP:
            return "—"
        return f"https://<your host>/webhooks/whatsapp/{channel.slug}/"

    def save_model(self, request, obj, form, change):
        resumed = change and "is_paused" in form.changed_data and not obj.is_paused
        if resumed:
            obj.is_paused = True  # channel_resume unpauses and releases what waited
        super().save_model(request, obj, form, change)
        if resumed:
            channel_resume(channel=obj)

    @admin.action(description="Pause the selected channels")
    def pause(self, request, queryset):
        count = queryset.update(is_paused=True)
        self.message_user(request, f"{count} channel(s) paused.", messages.SUCCESS)

    @admin.action(description="Resume the selected channels (send what was held)")
    def resume(self, request, queryset):
        released = sum(channel_resume(channel=channel) for channel in queryset)
        self.message_user(request, f"Resumed; {released} held message(s) queued.", messages.SUCCESS)

    @admin.action(description="Sync WhatsApp message templates from the Graph API")
    def sync_templates(self, request, queryset):
        for channel in queryset.filter(kind=ChannelKind.WHATSAPP):
            try:
                count = templates_sync(channel=channel)
            except (GraphError, ParleyError) as exc:
                self.message_user(request, f"{channel.slug}: {exc}", messages.ERROR)
            else:
                done = f"{channel.slug}: {count} template(s)."
                self.message_user(request, done, messages.SUCCESS)


@admin.register(WhatsAppTemplate)
class WhatsAppTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "language", "channel", "status"]
    list_filter = ["channel", "status", "language"]
    search_fields = ["name", "body"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["message", "channel", "status", "attempts", "last_error", "updated_at"]
    list_filter = ["status", "channel"]
    list_select_related = ["message", "channel"]
    search_fields = ["message__text", "last_error"]
    readonly_fields = [
        "message",
        "channel",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "updated_at",
        "delivered_at",
    ]
    actions = ["retry"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Retry the selected failed deliveries")
    def retry(self, request, queryset):
        count = 0
        for delivery in queryset.filter(status=DeliveryStatus.FAILED):
            delivery_retry(delivery=delivery)
            count += 1
        self.message_user(request, f"{count} delivery(ies) queued again.", messages.SUCCESS)


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    """An email channel's mailbox and its health: when mail last came in, when the
    fetcher last looked, and the last thing that went wrong."""

    list_display = ["address", "channel", "health", "last_received_at", "last_checked_at"]
    list_select_related = ["channel"]
    search_fields = ["address", "channel__slug"]
    readonly_fields = [
        "health",
        "last_received_at",
        "last_checked_at",
        "last_error",
        "last_error_at",
        "uidvalidity",
        "last_uid",
    ]
    fieldsets = [
        (None, {"fields": ["channel", "address", "from_name", "password_env"]}),
        (
            "IMAP (incoming)",
            {
                "fields": [
                    "imap_host",
                    "imap_port",
                    "imap_security",
                    "imap_user",
                    "imap_folder",
                    "poll_seconds",
                ]
            },
        ),
        ("SMTP (outgoing)", {"fields": ["smtp_host", "smtp_port", "smtp_security", "smtp_user"]}),
        ("Health", {"fields": readonly_fields}),
    ]

    @admin.display(description="Health")
    def health(self, mailbox: Mailbox) -> str:
        if mailbox.last_error_at and (
            mailbox.last_checked_at is None or mailbox.last_error_at >= mailbox.last_checked_at
        ):
            return f"Failing: {mailbox.last_error}"
        if mailbox.last_checked_at is None:
            return "Not fetched yet (is manage.py fetch_mail running?)"
        return "OK"
