"""Back office for flows (edited here, steps inline and reorderable by position),
their runs, and broadcasts with their deliveries (read-only: broadcasts are started
from /flows/ or the API, so that they always run through the background worker)."""

from django.contrib import admin

from conversations.admin import ReadOnlyMixin

from . import broadcasts
from .models import Broadcast, BroadcastDelivery, Flow, FlowRun, FlowStep


class FlowStepInline(admin.TabularInline):
    model = FlowStep
    extra = 1
    fields = (
        "position",
        "kind",
        "text",
        "attribute",
        "expects",
        "min_value",
        "max_value",
        "choices",
        "tag",
        "agent",
        "template",
        "template_params",
    )
    ordering = ("position", "id")


@admin.register(Flow)
class FlowAdmin(admin.ModelAdmin):
    list_display = ("name", "trigger_keyword", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "trigger_keyword", "description")
    inlines = [FlowStepInline]


@admin.register(FlowRun)
class FlowRunAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "flow", "conversation", "trigger", "state", "outcome", "started_at")
    list_filter = ("state", "trigger", "outcome", "flow")
    list_select_related = ("flow", "conversation__contact")
    search_fields = ("conversation__contact__name", "flow__name")
    raw_id_fields = ("conversation", "broadcast", "started_by")


class DeliveryInline(admin.TabularInline):
    model = BroadcastDelivery
    fields = ("contact", "outcome", "reason", "conversation", "created_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    # Large broadcasts: the inline shows the failures only; the full list is in
    # "Broadcast deliveries", filtered by broadcast.

    def get_queryset(self, request):
        return super().get_queryset(request).filter(outcome="failed").select_related("contact")


@admin.action(description="Resume the selected broadcasts (queue the chunks not done)")
def resume_broadcasts(modeladmin, request, queryset):
    resumed = sum(broadcasts.broadcast_resume(broadcast_id=b.pk) for b in queryset)
    modeladmin.message_user(
        request,
        f"{resumed} broadcast{'s' if resumed != 1 else ''} queued again; "
        "finished ones are left alone.",
    )


@admin.register(Broadcast)
class BroadcastAdmin(ReadOnlyMixin, admin.ModelAdmin):
    actions = [resume_broadcasts]
    list_display = ("id", "flow", "segment", "segment_value", "has_priority", "state")
    list_display += ("total", "sent", "skipped", "failed", "created_at")
    list_filter = ("state", "segment", "has_priority")
    list_select_related = ("flow",)
    inlines = [DeliveryInline]


@admin.register(BroadcastDelivery)
class BroadcastDeliveryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("id", "broadcast", "contact", "outcome", "reason", "created_at")
    list_filter = ("outcome",)
    list_select_related = ("broadcast__flow", "contact")
    search_fields = ("contact__name", "contact__external_id")
    raw_id_fields = ("broadcast", "contact", "conversation")
