from django import forms

from conversations.models import Tag
from conversations.selectors import contact_channels
from conversations.transitions import STATUS_CHOICES, Status

from .models import Segment
from .selectors import startable_flows

STATUS_SEGMENT_CHOICES = [
    ("", "Choose a status…"),
    *((value, label) for value, label in STATUS_CHOICES if value != Status.CLOSED),
    (Status.CLOSED, "Closed, or no open conversation"),
]


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
    segment = forms.ChoiceField(choices=Segment.choices, initial=Segment.ALL, label="Send to")
    tag = forms.ChoiceField(
        required=False, label="Tag", error_messages={"invalid_choice": "That tag does not exist."}
    )
    channel = forms.ChoiceField(
        required=False,
        label="Channel",
        error_messages={"invalid_choice": "No contact uses that channel."},
    )
    status = forms.ChoiceField(required=False, choices=STATUS_SEGMENT_CHOICES, label="Status")
    has_priority = forms.BooleanField(
        required=False,
        label="Priority",
        help_text="Also reach contacts whose conversation is ongoing (otherwise skipped).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only what exists: the tags and the channels contacts use.
        tags = Tag.objects.order_by("name").values_list("name", flat=True)
        self.fields["tag"].choices = [("", "Choose a tag…"), *((t, t) for t in tags)]
        channels = contact_channels()
        self.fields["channel"].choices = [("", "Choose a channel…"), *((c, c) for c in channels)]

    def segment_value(self) -> str:
        segment = self.cleaned_data["segment"]
        return {
            Segment.TAG: self.cleaned_data.get("tag", ""),
            Segment.CHANNEL: self.cleaned_data.get("channel", ""),
            Segment.STATUS: self.cleaned_data.get("status", ""),
        }.get(segment, "")
