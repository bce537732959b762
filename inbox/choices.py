"""The inbox's dropdown choices — active agents, tags, channels, and the flows
the pane offers — remembered per process (``conversations.memo``), so a list page
or a pane reads none of them.

Each kind has its own memo, forgotten when one of its rows is saved or deleted in
this process (and again on commit); a change made by another process is seen within
``SECONDS``. A value the memory does not know (a tag, an agent or a channel created
a moment ago by another process) is not refused on that account: ``*_knowing()``
reloads once when asked about an unknown value, so a fresh tag on a row or in a
filter link costs one query, never a wrong page.

Values are immutable (tuples), shared by every request and thread of the process.
"""

from typing import NamedTuple

from django.contrib.auth import get_user_model

from conversations.memo import Memo
from conversations.models import Contact, Tag
from conversations.selectors import contact_channels
from flows.selectors import startable_flows

SECONDS = 10


class TagChoice(NamedTuple):
    pk: int
    name: str
    colour: str


class Tags(NamedTuple):
    """Every tag, by name; and the same by id."""

    all: tuple[TagChoice, ...]
    by_id: dict[int, TagChoice]

    @property
    def names(self) -> list[str]:
        return [tag.name for tag in self.all]


def name_label(first_name: str | None, last_name: str | None, username: str) -> str:
    """An agent's label (``inbox.filters.agent_label``) from the user's columns."""
    return f"{first_name} {last_name}".strip() or username


class FlowChoice(NamedTuple):
    pk: int
    name: str


_agents = Memo(seconds=SECONDS, watch=["auth.User"], size=1)
_usernames = Memo(seconds=SECONDS, watch=["auth.User"], size=1)
_tags = Memo(seconds=SECONDS, watch=[Tag], size=1)
_channels = Memo(seconds=SECONDS, watch=[Contact], size=1)
_flows = Memo(seconds=SECONDS, watch=["flows.Flow"], size=1)
# Any user's label by id (authors of old messages may no longer be active agents).
_labels = Memo(seconds=SECONDS, watch=["auth.User"], size=5000)


def _load_agents() -> tuple[tuple[int, str], ...]:
    users = get_user_model().objects.filter(is_active=True).order_by("first_name", "username")
    rows = users.values_list("pk", "first_name", "last_name", "username")
    return tuple((pk, name_label(first, last, username)) for pk, first, last, username in rows)


def _load_tags() -> Tags:
    rows = Tag.objects.order_by("name").values_list("pk", "name", "colour")
    tags = tuple(TagChoice(*row) for row in rows)
    return Tags(all=tags, by_id={tag.pk: tag for tag in tags})


def _load_flows() -> tuple[FlowChoice, ...]:
    return tuple(FlowChoice(*row) for row in startable_flows().values_list("pk", "name"))


def agents() -> tuple[tuple[int, str], ...]:
    """The active agents as (id, label), by first name (the label as ``agent_label``)."""
    return _agents.get(None, _load_agents)


def mention_agents() -> tuple[dict, ...]:
    """The active agents as ``{"username", "name"}``, for the notes' @ suggestions."""

    def load():
        users = get_user_model().objects.filter(is_active=True).order_by("username")
        rows = users.values_list("username", "first_name", "last_name")
        return tuple({"username": u, "name": name_label(f, la, u)} for u, f, la in rows)

    return _usernames.get(None, load)


def tags() -> Tags:
    return _tags.get(None, _load_tags)


def channels() -> tuple[str, ...]:
    return _channels.get(None, lambda: tuple(contact_channels()))


def flows() -> tuple[FlowChoice, ...]:
    """The flows the pane's "Start flow" form offers (the flows app checks the one
    chosen when it is posted)."""
    return _flows.get(None, _load_flows)


def user_labels(ids) -> dict[int, str]:
    """The labels of the users ``ids`` (message authors, history actors): the active
    agents from ``agents()``, the others remembered by id; at most one query, for
    the ids not remembered."""
    labels = {}
    active = dict(agents())
    missing = []
    for pk in set(ids):
        label = active.get(pk) or _labels.peek(pk)
        if label is None:
            missing.append(pk)
        else:
            labels[pk] = label
    if missing:
        users = get_user_model().objects.filter(pk__in=missing)
        for pk, first, last, username in users.values_list(
            "pk", "first_name", "last_name", "username"
        ):
            labels[pk] = _labels.put(pk, name_label(first, last, username))
    return labels


def agents_knowing(pk: int | None) -> tuple[tuple[int, str], ...]:
    """``agents()``, reloaded first if ``pk`` is not among them."""
    held = agents()
    if pk is None or any(agent_pk == pk for agent_pk, _ in held):
        return held
    _agents.forget()
    return agents()


def tags_knowing(*, ids=(), names=()) -> Tags:
    """``tags()``, reloaded first if one of ``ids`` or ``names`` (any case) is unknown."""
    held = tags()
    known_names = {tag.name.lower() for tag in held.all} if names else set()
    if all(pk in held.by_id for pk in ids) and all(name.lower() in known_names for name in names):
        return held
    _tags.forget()
    return tags()


def channels_knowing(channel: str | None) -> tuple[str, ...]:
    """``channels()``, reloaded first if ``channel`` is not among them."""
    held = channels()
    if not channel or channel in held:
        return held
    _channels.forget()
    return channels()


def forget() -> None:
    """Forget every choice (tests: their rows roll back without a signal)."""
    _agents.forget()
    _usernames.forget()
    _tags.forget()
    _channels.forget()
    _flows.forget()
    _labels.forget()
