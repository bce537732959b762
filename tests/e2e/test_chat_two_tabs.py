"""The two-tab demo, in Chromium: a contact writes in the web chat, the
conversation appears as New in the agent's inbox, the agent replies there, and
the contact sees the reply while the conversation is In progress."""

import re

import pytest
from playwright.sync_api import expect

from conversations.models import Conversation
from conversations.transitions import Status
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_contact_and_agent_talk_through_two_tabs(live_server, browser, page):
    UserFactory(username="alice", first_name="Alice")

    # Tab 1: the contact opens the chat and writes.
    page.goto(f"{live_server.url}/chat/web/")
    expect(page.get_by_text("No messages yet")).to_be_visible()
    page.get_by_label("Your name").fill("Dana Visitor")
    page.get_by_label("Message").fill("Hi, my parcel <b>never</b> arrived")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#thread .inbound")).to_contain_text("my parcel <b>never</b> arrived")
    expect(page.get_by_label("Message")).to_have_value("")

    conversation = Conversation.objects.get(contact__name="Dana Visitor")
    assert conversation.status == Status.NEW

    # Tab 2: the agent, in a separate browser context (own cookies), logs in.
    agent_context = browser.new_context()
    inbox = agent_context.new_page()
    inbox.goto(f"{live_server.url}/login/")
    inbox.get_by_label("Username").fill("alice")
    inbox.get_by_label("Password").fill(PASSWORD)
    inbox.get_by_role("button", name="Log in").click()
    inbox.goto(f"{live_server.url}/inbox/?status=new")
    row = inbox.locator("main").get_by_text("Dana Visitor").first
    expect(row).to_be_visible()
    expect(inbox.locator("main")).to_contain_text("my parcel")

    # The agent opens the conversation: it is New; they reply.
    inbox.goto(f"{live_server.url}/inbox/c/{conversation.pk}/")
    expect(inbox.locator("#pane-status")).to_contain_text("New")
    inbox.locator("textarea[name=text]").fill("Sorry about that, Dana! A new one is on its way.")
    inbox.get_by_role("button", name="Send reply").click()
    expect(inbox.locator("#pane-status")).to_contain_text("In progress")

    # Tab 1 again: the reply shows up by itself (the page polls), signed by the agent.
    reply = page.locator("#thread .outbound")
    expect(reply).to_contain_text("A new one is on its way.", timeout=10_000)
    expect(reply).to_contain_text("Alice")
    expect(page.locator("#thread .msg")).to_have_count(2)

    conversation.refresh_from_db()
    assert conversation.status == Status.IN_PROGRESS
    assert conversation.assignee.username == "alice"

    # The contact answers back; the conversation stays In progress.
    page.get_by_label("Message").fill("Thank you!")
    page.get_by_label("Message").press("Enter")
    expect(page.locator("#thread .inbound")).to_have_count(2)
    conversation.refresh_from_db()
    assert conversation.status == Status.IN_PROGRESS
    assert conversation.messages.count() == 3
    agent_context.close()


def test_a_refused_message_shows_the_reason_in_the_chat(live_server, page):
    page.goto(f"{live_server.url}/chat/web/")
    # Bypass the browser's own "required" check to reach the server's refusal.
    page.get_by_label("Message").evaluate("el => el.removeAttribute('required')")
    page.get_by_label("Message").fill("   ")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("alert")).to_contain_text(re.compile("must not be empty"))
    assert not Conversation.objects.exists()
