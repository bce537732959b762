from django import forms

from conversations.transitions import STATUS_CHOICES

from .models import Segment
from .selectors import startable_flows


class StartFlowForm(forms.Form):
    flow = forms.ModelChoiceField(
        queryset=startable_flows(),
        empty_label=None,
        error_messages={
            "required": "Choose a flow to start.",
            "invalid_choice": "That flow does not exist or is inactive.",
        },
    )
    has_priority = forms.BooleanField(
        required=False,
        label="Priority",
        help_text="Interrupt an ongoing conversation (a running flow is cancelled).",
    )


class BroadcastForm(forms.Form):
    flow = forms.ModelChoiceField(
        queryset=startable_flows(),
        empty_label="Choose a flow…",
        error_messages={
            "required": "Choose a flow to broadcast.",
            "invalid_choice": "That flow does not exist or is inactive.",
        },
    )
    segment = forms.ChoiceField(choices=Segment.choices, initial=Segment.ALL)
    tag = forms.CharField(required=False, max_length=50, label="Tag")
    channel = forms.CharField(required=False, max_length=32, label="Channel")
    status = forms.ChoiceField(
        required=False, choices=[("", "—"), *STATUS_CHOICES], label="Current status"
    )
    has_priority = forms.BooleanField(
        required=False,
        label="Priority",
        help_text="Also reach contacts whose conversation is ongoing (otherwise skipped).",
    )

    def segment_value(self) -> str:
        segment = self.cleaned_data["segment"]
        return {
            Segment.TAG: self.cleaned_data.get("tag", ""),
            Segment.CHANNEL: self.cleaned_data.get("channel", ""),
            Segment.STATUS: self.cleaned_data.get("status", ""),
        }.get(segment, "")
