"""Issue #14's CSAT round trip in Chromium: the agent closes in the inbox, the web chat
shows the rating buttons, the contact taps 4, the conversation is Closed with 4."""

import pytest
from playwright.sync_api import expect

from conversations.models import Conversation
from conversations.transitions import Status
from tests.factories import PASSWORD, UserFactory, inbox_settings_set

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_survey_round_trip(live_server, browser, page):
    agent = UserFactory(username="alice", first_name="Alice")
    inbox_settings_set(csat_enabled=True, csat_question="How did Alice do?")

    page.goto(f"{live_server.url}/chat/web/")
    page.get_by_label("Message").fill("Where is my order?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#thread .inbound")).to_contain_text("Where is my order?")
    conversation = Conversation.objects.get()

    agent_context = browser.new_context()
    inbox = agent_context.new_page()
    inbox.goto(f"{live_server.url}/login/")
    inbox.get_by_label("Username").fill("alice")
    inbox.get_by_label("Password").fill(PASSWORD)
    inbox.get_by_role("button", name="Log in").click()
    inbox.goto(f"{live_server.url}/inbox/c/{conversation.pk}/")
    inbox.locator("textarea[name=text]").fill("It ships today.")
    inbox.get_by_role("button", name="Send reply").click()
    expect(inbox.locator("#pane-status")).to_contain_text("In progress")
    expect(inbox.locator(".tab-resolved")).to_contain_text("0")
    inbox.get_by_role("button", name="Close", exact=True).click()
    expect(inbox.locator("#pane-status")).to_contain_text("Resolved")
    expect(inbox.locator(".notice-success")).to_contain_text("The satisfaction survey was sent")
    expect(inbox.locator(".tab-resolved")).to_contain_text("1")

    # The chat shows the question and the ratings as buttons, by itself.
    expect(page.locator("#thread")).to_contain_text("How did Alice do?", timeout=10_000)
    four = page.get_by_role("button", name="Rate 4 out of 5")
    expect(four).to_be_visible()
    four.click()
    expect(page.get_by_role("button", name="Rate 4 out of 5")).to_have_count(0)
    expect(page.locator("#thread .inbound").last).to_contain_text("4")

    conversation.refresh_from_db()
    assert (conversation.status, conversation.rating, conversation.closed_by) == (
        Status.CLOSED,
        4,
        agent,
    )
    # The agent's screen follows by itself (server push or heartbeat).
    expect(inbox.locator("#pane-status")).to_contain_text("Closed", timeout=15_000)
    expect(inbox.locator(".tab-resolved")).to_contain_text("0", timeout=15_000)
    agent_context.close()
