from django.contrib import admin, messages

from .models import ApiToken, Channel, Delivery, DeliveryStatus, Mailbox
from .tokens import token_fill, token_revoke


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


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["slug", "kind", "webhook_url", "is_active"]
    fields = ["slug", "kind", "webhook_url", "webhook_secret", "identity_secret", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["slug"]


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
        from .delivery import delivery_retry

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
