"""The back office. Status never changes through a form: only through the actions,
which call the services one conversation at a time and report each refusal."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db import models
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from . import services
from .exceptions import ParleyError
from .inbox_settings import TIME_ZONES
from .models import (
    Activity,
    Contact,
    Conversation,
    ConversationTag,
    InboxSettings,
    Message,
    SavedReply,
    Source,
    StatusChange,
    Tag,
)
from .transitions import TAGS_LOCKED, Status


def _status_badge(status: str) -> str:
    return format_html(
        '<span class="parley-status parley-status--{}">{}</span>',
        status,
        Status(status).label,
    )


class StatusBadgeMedia:
    css = {"all": ["conversations/admin.css"]}


class ReadOnlyMixin:
    """For admins and inlines that show history: nothing is added, changed or deleted
    through them (the services and the database guards are the only writers)."""

    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ConversationHistoryInline(ReadOnlyMixin, admin.TabularInline):
    model = Conversation
    fields = ("link", "status_badge", "assignee", "last_activity_at", "archived_at")
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    extra = 0
    verbose_name_plural = "Conversation history (newest first)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("assignee")

    @admin.display(description="Conversation")
    def link(self, obj):
        url = reverse("admin:conversations_conversation_change", args=[obj.pk])
        return format_html('<a href="{}">#{}</a>', url, obj.pk)

    @admin.display(description="Status")
    def status_badge(self, obj):
        return _status_badge(obj.status)


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("__str__", "channel", "external_id", "created_at")
    list_filter = ("channel",)
    search_fields = ("name", "external_id")
    inlines = [ConversationHistoryInline]
    Media = StatusBadgeMedia

    def get_readonly_fields(self, request, obj=None):
        # A contact's identity on its channel is fixed once created.
        return ("channel", "external_id", "created_at") if obj else ("created_at",)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # Creating goes through the service: the first conversation comes with it.
        created = services.contact_create(
            channel=obj.channel,
            external_id=obj.external_id,
            name=obj.name,
            attributes=obj.attributes,
            source=Source.ADMIN,
            actor=request.user,
        )
        obj.pk = created.pk
        obj.created_at = created.created_at
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None):
        # Conversations are history; deleting a contact would delete it.
        return False


class ArchivedFilter(admin.SimpleListFilter):
    title = "archived"
    parameter_name = "archived"

    def lookups(self, request, model_admin):
        return (("no", "Not archived"), ("yes", "Archived"))

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.not_archived()
        if self.value() == "yes":
            return queryset.archived()
        return queryset


class TagLinkFormSet(forms.BaseInlineFormSet):
    """Tags of a closed conversation are locked: editing them is a form error."""

    def clean(self):
        super().clean()
        conversation = self.instance
        if conversation.pk is None:
            return
        closed = Conversation.objects.filter(pk=conversation.pk, status__in=TAGS_LOCKED).exists()
        touched = any(
            form.has_changed() or (self.can_delete and self._should_delete_form(form))
            for form in self.forms
        )
        if closed and touched:
            raise forms.ValidationError(
                "Tags are locked: this conversation is closed or resolved, so its tags can no "
                "longer change."
            )


class TagLinkInline(admin.TabularInline):
    model = ConversationTag
    formset = TagLinkFormSet
    fields = ("tag", "added_at")
    readonly_fields = ("added_at",)
    extra = 1
    verbose_name = "tag"
    verbose_name_plural = "Tags (locked once the conversation is closed)"

    # A closed conversation's tags are shown, not offered as controls that can only
    # fail on save.
    def has_add_permission(self, request, obj=None):
        return not (obj and obj.is_closed) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return not (obj and obj.is_closed) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not (obj and obj.is_closed) and super().has_delete_permission(request, obj)


class ConversationForm(forms.ModelForm):
    class Meta:
        model = Conversation
        fields = ("assignee",)

    def clean_assignee(self):
        assignee = self.cleaned_data.get("assignee")
        if self.instance.is_closed and assignee != self.instance.assignee:
            raise forms.ValidationError("Closed conversations are read-only.")
        if assignee is not None and not assignee.is_active:
            raise forms.ValidationError("Conversations can only be assigned to active agents.")
        return assignee


class MessageInline(ReadOnlyMixin, admin.TabularInline):
    model = Message
    fields = ("created_at", "direction", "sender_kind", "author", "text")
    readonly_fields = fields
    extra = 0
    ordering = ("created_at", "id")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("author")


class StatusChangeInline(ReadOnlyMixin, admin.TabularInline):
    model = StatusChange
    fields = ("at", "from_status", "to_status", "event", "source", "actor", "note")
    readonly_fields = fields
    extra = 0
    ordering = ("at", "id")
    verbose_name_plural = "Status history"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")


class ActivityInline(ReadOnlyMixin, admin.TabularInline):
    model = Activity
    fields = ("created_at", "kind", "details", "source", "actor")
    readonly_fields = fields
    extra = 0
    ordering = ("created_at", "id")
    verbose_name_plural = "Activity (assignments, tags, private notes)"

    def get_queryset(self, request):
        def username(key):
            user = get_user_model().objects.filter(
                pk=Cast(KeyTextTransform(key, OuterRef("data")), models.BigIntegerField())
            )
            return Subquery(user.values("username")[:1])

        queryset = super().get_queryset(request).select_related("actor")
        return queryset.annotate(from_user=username("from"), to_user=username("to"))

    @admin.display(description="Details")
    def details(self, obj):
        data = obj.data or {}
        if obj.kind == Activity.Kind.ASSIGNED:
            return f"{obj.from_user or 'nobody'} → {obj.to_user or 'nobody'}"
        return data.get("tag") or data.get("text", "")


def _run_action(modeladmin, request, queryset, service, done: str):
    succeeded = 0
    for conversation in queryset.order_by("pk"):
        try:
            service(conversation=conversation, actor=request.user, source=Source.ADMIN)
        except ParleyError as exc:
            modeladmin.message_user(
                request, f"#{conversation.pk} not {done}: {exc.detail}", messages.ERROR
            )
        else:
            succeeded += 1
    if succeeded:
        modeladmin.message_user(
            request,
            f"{succeeded} conversation{'s' if succeeded != 1 else ''} {done}.",
            messages.SUCCESS,
        )


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    form = ConversationForm
    Media = StatusBadgeMedia
    list_display = (
        "id",
        "contact",
        "status_badge",
        "assignee",
        "tag_list",
        "last_activity_at",
        "is_archived",
    )
    list_display_links = ("id", "contact")
    list_filter = ("status", ArchivedFilter, "tags", "assignee", "contact__channel")
    search_fields = ("contact__name", "contact__external_id", "last_message_preview")
    list_select_related = ("contact", "assignee")
    ordering = ("-last_activity_at", "-id")
    list_per_page = 50
    readonly_fields = (
        "contact",
        "status_badge",
        "created_at",
        "last_activity_at",
        "waiting_since",
        "closed_at",
        "closed_by",
        "archived_at",
        "resolved_at",
        "rating",
    )
    fields = readonly_fields[:2] + ("assignee",) + readonly_fields[2:]
    inlines = [TagLinkInline, MessageInline, StatusChangeInline, ActivityInline]
    actions = ["close_conversations", "archive_conversations", "unarchive_conversations"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tags")

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.is_closed:  # read-only: its assignee is history
            return (*self.readonly_fields, "assignee")
        return self.readonly_fields

    def has_add_permission(self, request):
        # Conversations start when a contact is created or writes.
        return False

    def save_model(self, request, obj, form, change):
        # The assignee is the form's only field: it changes through the service,
        # which records the change in the timeline.
        if change and "assignee" in form.changed_data:
            services.conversation_assign(
                conversation=obj.pk, assignee=obj.assignee, actor=request.user, source=Source.ADMIN
            )

    def save_formset(self, request, form, formset, change):
        formset.save()
        if formset.model is not ConversationTag:
            return
        lines = [(Activity.Kind.TAG_ADDED, link) for link in formset.new_objects]
        lines += [(Activity.Kind.TAG_ADDED, link) for link, _ in formset.changed_objects]
        lines += [(Activity.Kind.TAG_REMOVED, link) for link in formset.deleted_objects]
        Activity.objects.bulk_create(
            Activity(
                conversation_id=link.conversation_id,
                kind=kind,
                actor=request.user,
                source=Source.ADMIN,
                data={"tag": link.tag.name},
            )
            for kind, link in lines
        )

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        return _status_badge(obj.status)

    @admin.display(description="Tags")
    def tag_list(self, obj):
        return format_html_join(", ", "{}", ((tag.name,) for tag in obj.tags.all()))

    @admin.display(description="Archived", boolean=True, ordering="archived_at")
    def is_archived(self, obj):
        return obj.archived_at is not None

    @admin.action(description="Close selected conversations")
    def close_conversations(self, request, queryset):
        _run_action(self, request, queryset, services.conversation_close, "closed")

    @admin.action(description="Archive selected conversations")
    def archive_conversations(self, request, queryset):
        _run_action(self, request, queryset, services.conversation_archive, "archived")

    @admin.action(description="Unarchive selected conversations")
    def unarchive_conversations(self, request, queryset):
        _run_action(self, request, queryset, services.conversation_unarchive, "unarchived")


@admin.register(Message)
class MessageAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "conversation",
        "direction",
        "sender_kind",
        "author",
        "short_text",
        "created_at",
    )
    list_filter = ("direction", "sender_kind")
    search_fields = ("text",)
    list_select_related = ("conversation__contact", "author")
    ordering = ("-created_at", "-id")
    show_full_result_count = False

    @admin.display(description="Text")
    def short_text(self, obj):
        return obj.text[:80]


@admin.register(StatusChange)
class StatusChangeAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("at", "conversation", "from_status", "to_status", "event", "source", "actor")
    list_filter = ("to_status", "event", "source")
    list_select_related = ("conversation__contact", "actor")
    ordering = ("-at", "-id")
    show_full_result_count = False


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "swatch", "open_count", "closed_count")
    search_fields = ("name",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                open_total=Count("conversations", filter=~Q(conversations__status=Status.CLOSED)),
                closed_total=Count("conversations", filter=Q(conversations__status=Status.CLOSED)),
            )
        )

    @admin.display(description="Colour")
    def swatch(self, obj):
        return format_html(
            '<span style="display:inline-block;width:1em;height:1em;border-radius:3px;'
            'background:{}"></span> {}',
            obj.colour,
            obj.colour,
        )

    @admin.display(description="Open conversations", ordering="open_total")
    def open_count(self, obj):
        return obj.open_total

    @admin.display(description="Closed conversations", ordering="closed_total")
    def closed_count(self, obj):
        return obj.closed_total

    def get_deleted_objects(self, objs, request):
        # A tag that a closed conversation carries is locked with it: show it as
        # protected, so the admin explains instead of deleting (or failing).
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        for tag in objs:
            for conversation in Conversation.objects.closed().filter(tags=tag)[:20]:
                protected.append(
                    format_html(
                        "Tag “{}” is locked on closed conversation #{}", tag.name, conversation.pk
                    )
                )
        return deleted, model_count, perms_needed, protected


class InboxSettingsForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        label="Business time zone", choices=[(name, name) for name in sorted(TIME_ZONES)]
    )

    class Meta:
        model = InboxSettings
        fields = (
            "csat_enabled",
            "csat_question",
            "csat_window_hours",
            "archive_on_close",
            "auto_close_after_hours",
            "time_zone",
        )


@admin.register(InboxSettings)
class InboxSettingsAdmin(admin.ModelAdmin):
    """One row, made when the list is first opened; never added twice nor deleted."""

    form = InboxSettingsForm
    fieldsets = (
        (
            "Satisfaction survey (CSAT)",
            {"fields": ("csat_enabled", "csat_question", "csat_window_hours")},
        ),
        ("Closing", {"fields": ("archive_on_close", "auto_close_after_hours")}),
        ("Business", {"fields": ("time_zone",)}),
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        InboxSettings.objects.get_or_create(pk=1)
        return super().changelist_view(request, extra_context)


@admin.register(SavedReply)
class SavedReplyAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "shared", "updated_at")
    list_filter = ("shared",)
    search_fields = ("title", "body")
    list_select_related = ("owner",)

    def get_changeform_initial_data(self, request):
        return {"owner": request.user.pk, **super().get_changeform_initial_data(request)}
