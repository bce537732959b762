"""Every inbound message is checked for a flow's trigger keyword. The active keywords
are cached per process (flows/keywords.py), so a message that is not a keyword
costs no query; the cache never rules out a text that the database would match."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversations import services
from conversations.memo import Memo
from conversations.transitions import Status
from flows import keywords
from flows.models import Flow, FlowStep, StepKind
from tests.factories import conversation_in

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_keywords():
    keywords.forget()
    yield
    keywords.forget()


def _flow(keyword: str, *, is_active: bool = True) -> Flow:
    flow = Flow.objects.create(name=f"flow {keyword}", trigger_keyword=keyword, is_active=is_active)
    FlowStep.objects.create(flow=flow, position=1, kind=StepKind.ASK, text="Name?", attribute="n")
    return flow


def _receive(conversation, text):
    contact = conversation.contact
    with CaptureQueriesContext(connection) as queries:
        inbound = services.message_receive(
            channel=contact.channel, external_id=contact.external_id, text=text
        )
    return inbound, len(queries)


def test_a_message_that_is_no_keyword_costs_no_flow_query():
    _flow("menu")
    _flow("opening hours")
    conversation = conversation_in(Status.NEW)
    _receive(conversation, "first")  # loads the keywords
    _, statements = _receive(conversation, "Hello, any news about order #48213?")
    assert statements == 2 + 2  # SAVEPOINT, lock, message + touch, RELEASE
    _, statements = _receive(conversation, "help")  # the length of "menu", not it
    assert statements == 2 + 2


def test_a_keyword_starts_its_flow_and_the_answer_says_so():
    flow = _flow("menu")
    _receive(conversation_in(Status.NEW), "first")  # loads the keywords
    closed = conversation_in(Status.CLOSED)
    inbound, _ = _receive(closed, "  MENU ")
    assert inbound.conversation.status == Status.IN_FLOW
    assert inbound.conversation.pk != closed.pk  # the message opened a new one
    assert flow.runs.get().conversation_id == inbound.conversation.pk


def test_a_keyword_starts_a_flow_only_at_the_start_of_a_conversation():
    """§3: from Not contacted or on the opening message; a contact already waiting in
    New stays in the agents' queue (the keyword is an ordinary message)."""
    flow = _flow("menu")
    waiting = conversation_in(Status.NEW)
    inbound, _ = _receive(waiting, "menu")
    assert inbound.conversation.status == Status.NEW
    assert inbound.conversation.waiting_since is not None
    assert not flow.runs.exists()
    fresh = conversation_in(Status.NOT_CONTACTED)
    inbound, _ = _receive(fresh, "menu")
    assert (inbound.conversation.pk, inbound.conversation.status) == (fresh.pk, Status.IN_FLOW)
    # Not waiting for an agent while in the flow (no "waiting" badge).
    assert inbound.conversation.waiting_since is None
    in_progress = conversation_in(Status.IN_PROGRESS)
    inbound, _ = _receive(in_progress, "menu")
    assert inbound.conversation.status == Status.IN_PROGRESS
    assert flow.runs.count() == 1


def test_a_flow_saved_in_this_process_counts_at_once():
    _receive(conversation_in(Status.NEW), "first")  # loads the keywords: none
    _flow("menu")
    inbound, _ = _receive(conversation_in(Status.NOT_CONTACTED), "menu")
    assert inbound.conversation.status == Status.IN_FLOW


def test_a_flow_changed_by_another_process_counts_after_the_cache_delay(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(Memo, "clock", staticmethod(lambda: now[0]))
    flow = _flow("menu", is_active=False)
    _receive(conversation_in(Status.NEW), "first")  # loads the keywords: none active
    Flow.objects.filter(pk=flow.pk).update(is_active=True)  # no signal: as if elsewhere
    inbound, _ = _receive(conversation_in(Status.NOT_CONTACTED), "menu")
    assert inbound.conversation.status == Status.NEW  # not seen yet
    now[0] += keywords.KEYWORD_CACHE_SECONDS
    inbound, _ = _receive(conversation_in(Status.NOT_CONTACTED), "menu")
    assert inbound.conversation.status == Status.IN_FLOW


@pytest.mark.parametrize(
    ("keyword", "text"),
    [
        ("menu", "MENU"),
        ("opening hours", "Opening   HOURS"),
        ("it", "ıt"),  # dotless i: upper-cases to I
        ("start", "ſtart"),  # long s: upper-cases to S
        ("kelvin", "\u212aelvin"),  # the Kelvin sign
        ("café", "CAFÉ"),
        ("straße", "STRASSE"),
        ("ǆ", "ǅ"),  # a title-case letter
        ("menu", "ménu"),
        ("menu", "menus"),
    ],
)
def test_the_cache_never_rules_out_what_the_database_matches(keyword, text):
    _flow(keyword)
    words = keywords.normalise(text)
    database = Flow.objects.filter(is_active=True, trigger_keyword__iexact=words).exists()
    if database:
        assert keywords.may_be_keyword(text)
    if not keywords.may_be_keyword(text):
        assert not database


def test_texts_that_cannot_be_keywords_are_ruled_out():
    _flow("menu")
    _flow("señora")
    assert keywords.may_be_keyword("Menu")
    assert not keywords.may_be_keyword("menus")
    assert not keywords.may_be_keyword("help")  # ASCII, the length of "menu"
    assert not keywords.may_be_keyword("")
    assert not keywords.may_be_keyword("x" * 60)
    assert keywords.may_be_keyword("senora")  # the length of a non-ASCII keyword: ask
