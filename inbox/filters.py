"""The inbox's filters (PRODUCT.md §6): every one of them lives in the URL.

``ConversationFilter`` validates the query string with a Django form, so a bad
parameter becomes a form error shown above the list, never a 500.
"""

import copy
from datetime import UTC, date, datetime, time, timedelta
from html import escape

import django_filters
from django import forms
from django.db.models import Exists, OuterRef, Q, Subquery
from django.db.models.lookups import IsNull
from django.utils import timezone
from django.utils.safestring import mark_safe

from conversations.models import Contact, ConversationTag, Message
from conversations.transitions import OPEN, STATUS_CHOICES, Status

from . import choices

ARCHIVED_CHOICES = [("no", "Not archived"), ("yes", "Archived only"), ("any", "Any")]
SNOOZED_CHOICES = [("no", "Not snoozed"), ("yes", "Snoozed only"), ("any", "Any")]
SORT_ACTIVITY = "activity"
SORT_WAITING = "waiting"
SORT_CHOICES = [(SORT_ACTIVITY, "Last activity"), (SORT_WAITING, "Longest waiting")]
# A search term matching at most this many contacts or messages is "rare".
SEARCH_RARE_LIMIT = 200
# Up to this many matching contacts, their ids go into the query as a list (a hash
# table for the walk); beyond it, a subquery.
SEARCH_CONTACTS_LISTED = 5000
ASSIGNEE_ME = "me"
ASSIGNEE_NONE = "none"
# The default view is what needs the agent: open conversations assigned to them or
# to nobody. A URL choosing a status, the archive or an assignee chooses among all.
VIEW_NEEDS_ME = "needs_me"
VIEW_ALL = "all"
VIEW_CHOICES = [(VIEW_NEEDS_ME, "Needs me (open: mine or unassigned)"), (VIEW_ALL, "All")]
NOT_OPEN = [str(status) for status in Status if status not in OPEN]

# Values the inbox assumes when a parameter is missing; they are left out of URLs.
DEFAULTS = {"archived": "no", "snoozed": "no", "sort": SORT_ACTIVITY}
# Every parameter the filter form understands, in the order URLs spell them.
FILTER_PARAMS = (
    "view",
    "q",
    "status",
    "archived",
    "snoozed",
    "assignee",
    "tag",
    "channel",
    "active_from",
    "active_to",
    "sort",
)


def implied_view(params) -> str:
    """The view of a URL without ``view``. Asking for the snoozed ones asks for all of
    them (the Snoozed view, whose count is every snoozed conversation's)."""
    archived = params.get("archived") or DEFAULTS["archived"]
    chooses = (
        params.getlist("status")
        or archived != DEFAULTS["archived"]
        or params.get("assignee")
        or params.get("snoozed") == "yes"
    )
    return VIEW_ALL if chooses else VIEW_NEEDS_ME


def agent_label(user) -> str:
    return user.get_full_name() or user.get_username()


def _int_or_none(value) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) < 19 else None


class SharedFilters(dict):
    """A FilterSet's filters: ``BaseFilterSet.__init__`` deep-copies them (their
    choices and widgets with them) for every request, only to give each its
    ``parent``; a shallow copy of each filter is enough, its method re-bound."""

    def __deepcopy__(self, memo):
        copies = {}
        for name, original in self.items():
            copied = copy.copy(original)
            if original.method is not None:  # the FilterMethod points at its filter
                copied.method = original.method
            copies[name] = copied
        return copies


class SharedFields(dict):
    """A form class's fields, shared (read only) by every form built from it:
    ``Form.__init__`` deep-copies ``base_fields``; this copy is a shallow one."""

    def __deepcopy__(self, memo):
        return dict(self)


def html_attrs(attrs: dict) -> str:
    """Attributes as Django's ``attrs.html`` writes them: in order, ``True`` bare,
    ``False`` left out, every value escaped."""
    parts = []
    for name, value in attrs.items():
        if value is True:
            parts.append(f" {escape(str(name))}")
        elif value is not False:
            parts.append(f' {escape(str(name))}="{escape(str(value))}"')
    return "".join(parts)


class FastSelect(forms.Select):
    """``forms.Select`` drawn in Python: the same HTML (the attributes from Django's
    ``build_attrs``, the first matching option selected) without a template per
    option; through the widget templates the assignee list of 100 agents took 7 ms."""

    def render(self, name, value, attrs=None, renderer=None):
        values = set(self.format_value(value))
        selected = False

        def option(option_value, label) -> str:
            nonlocal selected
            # As ChoiceWidget.optgroups: None is the empty string; the first match wins.
            option_value = "" if option_value is None else option_value
            is_selected = not selected and str(option_value) in values
            selected = selected or is_selected
            return self._option(option_value, label, is_selected)

        options = []
        for option_value, label in self.choices:
            if isinstance(label, list | tuple):  # an optgroup
                group = "".join(option(v, sub) for v, sub in label)
                options.append(f'<optgroup label="{escape(str(option_value))}">{group}</optgroup>')
            else:
                options.append(option(option_value, label))
        final_attrs = html_attrs(self.build_attrs(self.attrs, attrs))
        html = f'<select name="{escape(str(name))}"{final_attrs}>{"".join(options)}</select>'
        return mark_safe(html)  # noqa: S308 (every value above is escaped)

    @staticmethod
    def _option(value, label, selected: bool) -> str:
        value = escape("" if value is None else str(value))
        selected_attr = " selected" if selected else ""
        return f'<option value="{value}"{selected_attr}>{escape(str(label))}</option>'


# Django's templates for a bare <input> (a text or date field, a checkbox of a list
# drawn without its label): drawn in Python by PythonInput, the same HTML.
_INPUT_TEMPLATES = {
    "django/forms/widgets/input.html",
    "django/forms/widgets/text.html",
    "django/forms/widgets/date.html",
    "django/forms/widgets/input_option.html",
    "django/forms/widgets/checkbox_option.html",
}


class PythonInput:
    """A widget mixin: bare ``<input>``s without a template render (the filter form
    had eight, about 0.25 ms each). Labelled options go to Django's templates."""

    def _render(self, template_name, context, renderer=None):
        widget = context["widget"]
        if template_name not in _INPUT_TEMPLATES or widget.get("wrap_label"):
            return super()._render(template_name, context, renderer)
        value = "" if widget["value"] is None else f' value="{escape(str(widget["value"]))}"'
        attrs = html_attrs(widget["attrs"])
        html = f'<input type="{widget["type"]}" name="{escape(widget["name"])}"{value}{attrs}>'
        return mark_safe(html)  # noqa: S308 (every value is escaped)


class SearchInput(PythonInput, forms.TextInput):
    pass


class DayInput(PythonInput, forms.DateInput):
    pass


class Checkboxes(PythonInput, forms.CheckboxSelectMultiple):
    pass


class InboxFilterForm(forms.Form):
    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("active_from"), cleaned.get("active_to")
        if start and end and start > end:
            self.add_error("active_to", "The end date is before the start date.")
        return cleaned


def start_of_day(day: date) -> datetime | None:
    """Midnight at the start of ``day`` in the current time zone, in UTC; None when
    that moment is beyond what a datetime holds, which only the first day (year 1,
    in a zone east of UTC) and the day after the last (31 Dec 9999) can be: a bound
    before or after every conversation."""
    try:
        return timezone.make_aware(datetime.combine(day, time.min)).astimezone(UTC)
    except (OverflowError, ValueError):
        return None


class ConversationFilter(django_filters.FilterSet):
    view = django_filters.ChoiceFilter(
        label="View",
        choices=VIEW_CHOICES,
        method="filter_view",
        empty_label=None,
        widget=FastSelect,
    )
    q = django_filters.CharFilter(
        label="Search",
        method="filter_text",
        max_length=200,
        widget=SearchInput(attrs={"type": "search", "placeholder": "Name, phone or message…"}),
    )
    status = django_filters.MultipleChoiceFilter(
        label="Status",
        choices=STATUS_CHOICES,
        widget=Checkboxes,
        distinct=False,  # a column of the row itself: DISTINCT would only defeat the indexes
    )
    archived = django_filters.ChoiceFilter(
        label="Archived",
        choices=ARCHIVED_CHOICES,
        method="filter_archived",
        empty_label=None,
        widget=FastSelect,
    )
    snoozed = django_filters.ChoiceFilter(
        label="Snoozed",
        choices=SNOOZED_CHOICES,
        method="filter_snoozed",
        empty_label=None,
        widget=FastSelect,
    )
    assignee = django_filters.ChoiceFilter(
        label="Assignee", method="filter_assignee", empty_label="Anyone", widget=FastSelect
    )
    tag = django_filters.ChoiceFilter(
        label="Tag", method="filter_tag", empty_label="Any tag", widget=FastSelect
    )
    channel = django_filters.ChoiceFilter(
        label="Channel",
        field_name="contact__channel",
        empty_label="Any channel",
        widget=FastSelect,
    )
    active_from = django_filters.DateFilter(
        label="Active from",
        method="filter_active_from",
        widget=DayInput(attrs={"type": "date"}),
    )
    active_to = django_filters.DateFilter(
        label="Active until",
        method="filter_active_to",
        widget=DayInput(attrs={"type": "date"}),
    )
    # Applied by the selector, which owns the ordering (keyset pagination).
    sort = django_filters.ChoiceFilter(
        label="Sort by",
        choices=SORT_CHOICES,
        method="filter_nothing",
        empty_label=None,
        widget=FastSelect,
    )

    class Meta:
        form = InboxFilterForm
        fields: list[str] = []

    def __init__(self, data=None, *args, **kwargs):
        if data is not None:
            data = data.copy()
            if not data.get("view"):
                data["view"] = implied_view(data)
            for key, default in DEFAULTS.items():
                if not data.get(key):
                    data[key] = default
        super().__init__(data, *args, **kwargs)
        # The choices come from the per-process memory (inbox.choices): no query on
        # most requests. A value it does not know (created a moment ago in another
        # process) reloads it once, so a fresh tag, agent or channel is never refused.
        data = self.data
        self.agents = choices.agents_knowing(_int_or_none(data.get("assignee")))
        self.tag_choices = choices.tags_knowing(names=[data["tag"]] if data.get("tag") else ())
        self.channels = choices.channels_knowing(data.get("channel"))
        self.tags = self.tag_choices.all
        self.tags_by_id = self.tag_choices.by_id
        self.tag_names = self.tag_choices.names
        # Set by filter_text: a common search term, too many matches to count cheaply.
        self.search_is_broad = False

    def get_form_class(self):
        # One form class per set of choices (they change when the memory reloads),
        # its fields shared by every form built from it: Django's Form deep-copies
        # its fields for every form (100 agents' choices), these are only read.
        cls = type(self)
        built = cls.__dict__.get("_form_class")
        current = (self.agents, self.tag_choices, self.channels)
        if built is not None and all(a is b for a, b in zip(built[:3], current, strict=True)):
            return built[3]
        form_class = super().get_form_class()
        fields = form_class.base_fields
        fields["assignee"].choices = [
            (ASSIGNEE_ME, "Me"),
            (ASSIGNEE_NONE, "Unassigned"),
            *((str(pk), label) for pk, label in self.agents),
        ]
        fields["tag"].choices = [(name, name) for name in self.tag_names]
        fields["channel"].choices = [(c, c) for c in self.channels]
        form_class.base_fields = SharedFields(fields)
        cls._form_class = (*current, form_class)
        return form_class

    def filter_text(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        # Two shapes (docs/performance.md). A rare term: its few matching contacts and
        # messages come from the trigram indexes, and the conversations are fetched by
        # key. A common term: walk the conversations newest first and probe each one's
        # messages (Exists, so many matches are still one row); the page fills fast.
        contacts = Contact.objects.matching(value)
        messages = Message.objects.filter(text__icontains=value).order_by()
        listed = max(SEARCH_CONTACTS_LISTED, SEARCH_RARE_LIMIT)
        contact_ids = list(contacts.values_list("pk", flat=True)[: listed + 1])
        found = list(messages.values_list("conversation_id", flat=True)[: SEARCH_RARE_LIMIT + 1])
        # A common name: the walk checks each conversation's contact against the
        # list (PostgreSQL hashes it). As a subquery, the planner probes the contact
        # of each conversation and re-matches the name: 3x slower.
        by_contact = Q(contact_id__in=contact_ids)
        if len(contact_ids) > SEARCH_RARE_LIMIT:
            self.search_is_broad = True
            if len(contact_ids) > listed:
                by_contact = Q(contact__in=contacts)
        if len(found) > SEARCH_RARE_LIMIT:
            self.search_is_broad = True
            # A probe per conversation, newest first, until the page is full. Not an
            # EXISTS: PostgreSQL may turn that into a join (or a hashed subplan) that
            # reads every matching message first: 0.5–1.6 s for a word in 57,000
            # archived messages, against a few ms for the probes. A scalar subquery
            # with LIMIT 1 can only be probed.
            first_match = messages.filter(conversation=OuterRef("pk")).values("pk")[:1]
            by_message = Q(IsNull(Subquery(first_match), False))
        else:
            by_message = Q(pk__in=set(found))
        return queryset.filter(by_contact | by_message)

    def filter_view(self, queryset, name, value):
        user = getattr(self.request, "user", None)
        if value != VIEW_NEEDS_ME or user is None or not user.is_authenticated:
            return queryset  # no agent (a FilterSet used without a request): all
        # The condition of the index conv_open_activity: its walk, newest first.
        return (
            queryset.filter(archived_at__isnull=True)
            .exclude(status__in=NOT_OPEN)
            .filter(Q(assignee=user) | Q(assignee__isnull=True))
        )

    def filter_archived(self, queryset, name, value):
        if value == "yes":
            return queryset.archived()
        if value == "any":
            return queryset
        return queryset.not_archived()

    def filter_snoozed(self, queryset, name, value):
        if value == "yes":
            return queryset.snoozed()
        if value == "any":
            return queryset
        return queryset.not_snoozed()

    def filter_assignee(self, queryset, name, value):
        if value == ASSIGNEE_ME:
            user = getattr(self.request, "user", None)
            if user is None or not user.is_authenticated:
                return queryset.none()
            return queryset.filter(assignee=user)
        if value == ASSIGNEE_NONE:
            return queryset.filter(assignee__isnull=True)
        return queryset.filter(assignee_id=int(value))

    def filter_tag(self, queryset, name, value):
        # The tag's id is known (the choices were just read): one index probe of the
        # links per conversation, no join to the tags.
        tag_ids = [tag.pk for tag in self.tags if tag.name.lower() == value.lower()]
        return queryset.filter(
            Exists(ConversationTag.objects.filter(conversation=OuterRef("pk"), tag_id__in=tag_ids))
        )

    # Any date the form accepts (years 1 to 9999) filters, never fails: a bound that
    # a datetime cannot hold is before or after every conversation, so no bound.

    def filter_active_from(self, queryset, name, value):
        start = start_of_day(value)
        return queryset if start is None else queryset.filter(last_activity_at__gte=start)

    def filter_active_to(self, queryset, name, value):
        # The whole "until" day is included; a half-open range keeps the index usable.
        end = start_of_day(value + timedelta(days=1)) if value < date.max else None
        return queryset if end is None else queryset.filter(last_activity_at__lt=end)

    def filter_nothing(self, queryset, name, value):
        return queryset


ConversationFilter.base_filters = SharedFilters(ConversationFilter.base_filters)
