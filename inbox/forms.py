"""Forms for the inbox's actions. Services validate message text and tag names
themselves (one wording for the UI, the API and the admin); these forms check the
shape of the request."""

import json

from django import forms
from django.contrib.auth import get_user_model

from conversations.services import attribute_text

from .filters import ASSIGNEE_ME, ASSIGNEE_NONE, agent_label

BULK_LIMIT = 1000


class AgentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return agent_label(obj)


def active_agents():
    return get_user_model().objects.filter(is_active=True).order_by("first_name", "username")


class AssignForm(forms.Form):
    assignee = AgentChoiceField(
        queryset=active_agents(),
        required=False,
        empty_label="Nobody",
        error_messages={"invalid_choice": "Choose an active agent from the list."},
    )


class IntegerListField(forms.Field):
    """Several integers from repeated parameters (``ids=1&ids=2``)."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        try:
            numbers = [int(v) for v in value if str(v).strip()]
        except (TypeError, ValueError) as exc:
            raise forms.ValidationError("Select conversations from the list.") from exc
        return list(dict.fromkeys(numbers))


class BulkActionForm(forms.Form):
    ACTIONS = [("close", "Close"), ("archive", "Archive"), ("assign", "Assign"), ("tag", "Add tag")]
    action = forms.ChoiceField(
        choices=ACTIONS,
        error_messages={
            "required": "Choose an action.",
            "invalid_choice": "Choose an action from the bar.",
        },
    )
    ids = IntegerListField(required=False)
    scope = forms.ChoiceField(
        choices=[("selected", "Selected rows"), ("all", "All matching the filter")],
        required=False,
    )
    filters = forms.CharField(required=False, max_length=4000)
    assignee = forms.CharField(required=False, max_length=20)
    tag = forms.CharField(required=False, max_length=50, strip=True)

    def clean(self):
        cleaned = super().clean()
        action = cleaned.get("action")
        if cleaned.get("scope") != "all" and not cleaned.get("ids"):
            raise forms.ValidationError(
                "Select at least one conversation, or choose all matching the filter."
            )
        if action == "tag" and not cleaned.get("tag"):
            self.add_error("tag", "Type the tag to add.")
        if action == "assign":
            cleaned["assignee_user"] = self._assignee(cleaned.get("assignee") or "")
        return cleaned

    def _assignee(self, value: str):
        if value in ("", ASSIGNEE_NONE):
            return None
        if value == ASSIGNEE_ME:
            return self.user
        if value.isdigit():
            agent = active_agents().filter(pk=int(value)).first()
            if agent is not None:
                return agent
        self.add_error("assignee", "Choose an active agent from the list.")
        return None

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user


def contact_seen(contact) -> str:
    """What a contact form is drawn from (its hidden ``seen``): the name and the
    attributes as the form shows them."""
    attributes = {key: attribute_text(value) for key, value in contact.attributes.items()}
    return json.dumps({"name": contact.name, "attributes": attributes})


class ContactForm(forms.Form):
    """A contact's name and its attributes as rows of (name, value) inputs
    (``attr_key`` and ``attr_value``, repeated); a row left empty is dropped."""

    BLANK_ROWS = 2
    name = forms.CharField(required=False, max_length=200, label="Name")
    # What the form was drawn from (JSON): saving applies only the editor's changes
    # to the contact as it is by then (``services.contact_update``).
    seen = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, data=None, *, contact):
        initial_rows = [(k, attribute_text(v)) for k, v in contact.attributes.items()]
        if data is None:
            self.rows = initial_rows
        else:
            keys, values = data.getlist("attr_key"), data.getlist("attr_value")
            self.rows = list(zip(keys, values + [""] * (len(keys) - len(values)), strict=False))
        super().__init__(data, initial={"name": contact.name, "seen": contact_seen(contact)})

    def clean_seen(self) -> dict | None:
        raw = self.cleaned_data["seen"]
        if not raw:
            return None
        try:
            seen = json.loads(raw)
        except ValueError:
            seen = None
        valid = (
            isinstance(seen, dict)
            and isinstance(seen.get("name"), str)
            and isinstance(seen.get("attributes"), dict)
            and all(isinstance(v, str) for v in seen["attributes"].values())
        )
        if not valid:
            raise forms.ValidationError("This form is out of date: open it again.")
        return seen

    def row_fields(self) -> list[tuple[int, str, str]]:
        """The rows to draw: the attributes, then blank rows to add new ones."""
        rows = [*self.rows, *[("", "")] * self.BLANK_ROWS]
        return [(n, key, value) for n, (key, value) in enumerate(rows, start=1)]

    def clean(self):
        cleaned = super().clean()
        attributes = {}
        for key, value in self.rows:
            key, value = key.strip(), value.strip()
            if not key and not value:
                continue
            if not key:
                raise forms.ValidationError(f"The value “{value[:40]}” needs a name.")
            if key in attributes:
                raise forms.ValidationError(f"“{key}” is there twice; keep one.")
            attributes[key] = value
        cleaned["attributes"] = attributes
        return cleaned
