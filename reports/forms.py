"""The reports' range and filters, from the query string (the page's GET form and
the API take the same parameters)."""

from datetime import date, datetime, timedelta

from django import forms

from conversations.inbox_settings import business_timezone
from inbox import choices

from .models import ALL_AGENTS, ALL_CHANNELS, ANY_TAG
from .selectors import Params

PRESETS = [
    ("today", "Today"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
    ("month", "This month"),
    ("custom", "Custom range"),
]
DEFAULT_PRESET = "7d"
MAX_DAYS = 366


def today() -> date:
    return datetime.now(business_timezone()).date()


def preset_range(preset: str, day: date) -> tuple[date, date]:
    return {
        "today": (day, day),
        "7d": (day - timedelta(6), day),
        "30d": (day - timedelta(29), day),
        "month": (day.replace(day=1), day),
    }[preset]


class ReportForm(forms.Form):
    range = forms.ChoiceField(choices=PRESETS, required=False, label="Range")
    start = forms.DateField(required=False, label="From", widget=forms.DateInput({"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput({"type": "date"}))
    channel = forms.ChoiceField(required=False, label="Channel")
    tag = forms.ChoiceField(required=False, label="Tag")
    agent = forms.ChoiceField(required=False, label="Agent")

    def __init__(self, data, *, user):
        if not data.get("range"):
            # The range in force is shown selected (else the select shows its first
            # choice, "Today", over a week's figures, and a change of channel then
            # submits "Today").
            data = data.copy()
            data["range"] = "custom" if data.get("start") else DEFAULT_PRESET
        super().__init__(data)
        self.user = user
        self.fields["channel"].choices = [("", "All channels")] + [
            (c, c) for c in choices.channels_knowing(data.get("channel"))
        ]
        self.fields["tag"].choices = [("", "All tags")] + [
            (str(t.pk), t.name) for t in choices.tags().all
        ]
        agents = choices.agents()
        if not user.is_staff:
            agents = [(pk, label) for pk, label in agents if pk == user.pk]
        self.fields["agent"].choices = [("", "All agents")] + [
            (str(pk), label) for pk, label in agents
        ]

    def clean(self):
        data = super().clean()
        preset = data.get("range")
        if not preset:  # not one of the choices: the field says so
            return data
        if preset != "custom":
            data["start"], data["end"] = preset_range(preset, today())
        start, end = data.get("start"), data.get("end") or today()
        if start is None:
            raise forms.ValidationError("Choose the first day of the range.", code="invalid_range")
        if end < start:
            raise forms.ValidationError("The range ends before it starts.", code="invalid_range")
        if (end - start).days >= MAX_DAYS:
            raise forms.ValidationError(
                f"A range covers at most {MAX_DAYS} days.", code="invalid_range"
            )
        if data.get("tag") and data.get("agent"):
            raise forms.ValidationError(
                "Choose a tag or an agent: the figures per agent are not split by tag.",
                code="tag_and_agent",
            )
        data["end"] = end
        return data

    def params(self) -> Params:
        data = self.cleaned_data
        return Params(
            start=data["start"],
            end=data["end"],
            channel=data.get("channel") or ALL_CHANNELS,
            tag_id=int(data.get("tag") or ANY_TAG),
            agent_id=int(data.get("agent") or ALL_AGENTS),
        )
