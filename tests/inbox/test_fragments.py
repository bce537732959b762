"""The markup drawn outside Django's templates stays the markup Django would draw.

- ``FastSelect`` and the ``PythonInput`` widgets render in Python (the filter form's
  selects and inputs, without a template per option): their HTML equals Django's
  own widgets', compared element by element, attribute by attribute.
- The hot fragments are Jinja2 templates (``templates/jinja2/inbox/``) with
  autoescape on, whatever ``TEMPLATES`` says.
"""

from html.parser import HTMLParser

import pytest
from django import forms
from django.http import QueryDict
from django.template import engines
from markupsafe import Markup

from conversations.models import Conversation
from conversations.transitions import Status
from inbox.display import agent_options, status_badge
from inbox.filters import Checkboxes, ConversationFilter, DayInput, FastSelect, SearchInput
from tests.factories import ContactFactory, UserFactory, conversation_in

from .conftest import hx

NASTY = "<b>\"Tom\" & 'Jerry'</b>"


class _Tokens(HTMLParser):
    """An HTML fragment as (start/end, tag, sorted attributes) and text tokens;
    whitespace between elements (template indentation) ignored."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tokens = []

    def handle_starttag(self, tag, attrs):
        self.tokens.append(("start", tag, sorted(attrs, key=lambda a: a[0])))

    def handle_endtag(self, tag):
        self.tokens.append(("end", tag))

    def handle_data(self, data):
        if data.strip():
            self.tokens.append(("text", data.strip()))


def tokens(html: str) -> list:
    parser = _Tokens()
    parser.feed(str(html))
    parser.close()
    return parser.tokens


SELECT_CASES = [
    ([("a", "A"), ("b", "B")], "b", {}),
    ([("", "Anyone"), ("me", "Me"), ("7", NASTY)], "7", {"id": "id_x", "class": "input-sm"}),
    ([(1, "one"), (2, "two")], 2, {"required": True, "disabled": False}),
    ([(None, "none"), ("x", "x")], None, {"data-q": NASTY}),
    ([("a", "A"), ("a", "A again")], "a", {}),  # only the first match is selected
    ([("group", [("g1", "G1"), ("g2", "G2")]), ("z", "Z")], "z", {}),
    ([("group", [("g1", "G1"), ("g2", "G2")]), ("g2", "again")], "g2", {}),
    ([(NASTY, NASTY)], NASTY, {"title": NASTY}),
    ([], "", {}),
]


@pytest.mark.parametrize(("choices", "value", "attrs"), SELECT_CASES)
def test_fast_select_draws_what_djangos_select_draws(choices, value, attrs):
    fast = FastSelect(attrs={"class": "base"}, choices=choices).render("pick", value, attrs)
    django = forms.Select(attrs={"class": "base"}, choices=choices).render("pick", value, attrs)
    assert tokens(fast) == tokens(django)
    assert NASTY not in fast  # escaped


@pytest.mark.parametrize(
    ("ours", "django", "attrs", "value"),
    [
        (SearchInput, forms.TextInput, {"type": "search", "placeholder": "Search…"}, NASTY),
        (SearchInput, forms.TextInput, None, ""),
        (SearchInput, forms.TextInput, None, None),
        (DayInput, forms.DateInput, {"type": "date"}, "2024-03-05"),
        (DayInput, forms.DateInput, {"type": "date"}, NASTY),
    ],
)
def test_python_inputs_draw_what_djangos_inputs_draw(ours, django, attrs, value):
    extra = {"id": "id_q", "aria-describedby": NASTY}
    drawn = ours(attrs=attrs).render("q", value, extra)
    assert tokens(drawn) == tokens(django(attrs=attrs).render("q", value, extra))
    assert NASTY not in drawn


@pytest.mark.parametrize("value", [["new"], ["new", "closed"], [], [NASTY]])
def test_python_checkboxes_draw_what_djangos_checkboxes_draw(value):
    choices = [("new", "New"), ("closed", "Closed"), (NASTY, NASTY)]
    ours = Checkboxes(choices=choices)
    django = forms.CheckboxSelectMultiple(choices=choices)
    assert tokens(ours.render("status", value, {"id": "id_status"})) == tokens(
        django.render("status", value, {"id": "id_status"})
    )
    # The filter form draws each checkbox alone (choice.tag), through PythonInput.
    ours_tags = [w.tag() for w in forms.BoundField(_form(ours), _field(ours), "status")]
    django_tags = [w.tag() for w in forms.BoundField(_form(django), _field(django), "status")]
    assert [tokens(t) for t in ours_tags] == [tokens(t) for t in django_tags]


def _field(widget):
    return forms.MultipleChoiceField(choices=widget.choices, widget=widget, required=False)


def _form(widget):
    class One(forms.Form):
        status = _field(widget)

    return One(data={"status": ["new"]})


@pytest.mark.django_db
def test_the_filter_form_draws_what_djangos_widgets_draw(agent):
    """The whole filter form, bound to every parameter, against the same form with
    Django's own widgets."""
    UserFactory(first_name=NASTY)
    data = {
        "q": NASTY,
        "status": ["new", "closed"],
        "archived": "any",
        "assignee": "me",
        "active_from": "2024-01-01",
        "active_to": "bad",
        "sort": "waiting",
    }
    query = QueryDict(mutable=True)
    for key, value in data.items():
        query.setlist(key, value if isinstance(value, list) else [value])
    form = ConversationFilter(query, queryset=Conversation.objects.all()).form
    form.is_valid()
    for name, field in form.fields.items():
        ours = form[name]
        plain = _plain_widget(field.widget)
        theirs = ours.as_widget(widget=plain)
        assert tokens(ours.as_widget()) == tokens(theirs), name


def _plain_widget(widget):
    for cls in type(widget).__mro__:
        if cls.__module__.startswith("django.forms"):
            plain = cls.__new__(cls)
            plain.__dict__.update(widget.__dict__)
            return plain
    raise AssertionError(widget)


# --- the Jinja2 fragments ---------------------------------------------------------------


def test_the_jinja2_fragments_escape_whatever_the_settings_say():
    env = engines["jinja2"].env
    assert env.autoescape is True
    rendered = env.from_string("{{ value }}").render(value=NASTY)
    assert rendered == "&lt;b&gt;&#34;Tom&#34; &amp; &#39;Jerry&#39;&lt;/b&gt;"


def test_agent_options_are_escaped_and_marked():
    options = agent_options(((1, NASTY), (2, "Bob")), selected=2, me=1)
    assert isinstance(options, Markup)
    assert tokens(options) == [
        ("start", "option", [("value", "1")]),
        ("text", f"{NASTY} (me)"),
        ("end", "option"),
        ("start", "option", [("selected", None), ("value", "2")]),
        ("text", "Bob"),
        ("end", "option"),
    ]
    assert NASTY not in options


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "archived"), [(Status.IN_FLOW, False), (Status.CLOSED, True)])
def test_status_badge(status, archived):
    conversation = conversation_in(status, archived=archived)
    expected = [
        ("start", "span", [("class", f"badge badge-{status.replace('_', '-')}")]),
        ("text", {"in_flow": "In a flow", "closed": "Closed"}[status]),
        ("end", "span"),
    ]
    if archived:
        expected += [
            ("start", "span", [("class", "badge badge-archived")]),
            ("text", "Archived"),
            ("end", "span"),
        ]
    assert tokens(status_badge(conversation)) == expected


@pytest.mark.django_db
def test_rows_and_thread_escape_every_value(agent_client, agent):
    agent.first_name = NASTY
    agent.save()
    contact = ContactFactory(name=NASTY, channel="web")
    conversation = conversation_in(Status.IN_PROGRESS, contact=contact, agent=agent, text=NASTY)
    for response in (
        agent_client.get("/inbox/"),
        agent_client.get(f"/inbox/c/{conversation.pk}/", headers=hx(target="conversation-pane")),
    ):
        assert response.status_code == 200
        assert NASTY not in response.text
        assert "&lt;b&gt;" in response.text
