"""A long thread in Chromium: the pane opens on the newest messages; "Show earlier
messages" loads the ones before, page by page, down to the first; a refresh of the
pane (a reply) keeps what was loaded."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from conversations.models import Direction, Message, SenderKind
from conversations.transitions import Status
from tests.factories import PASSWORD, ContactFactory, UserFactory, conversation_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def long_thread(db):
    UserFactory(username="alice", first_name="Alice", last_name="Martin")
    conversation = conversation_in(
        Status.NEW, contact=ContactFactory(name="Dana Scully"), text="The very first message"
    )
    start = timezone.now() - timedelta(hours=3)
    for index in range(1, 120):
        message = Message.objects.create(
            conversation=conversation,
            direction=Direction.INBOUND,
            sender_kind=SenderKind.CONTACT,
            text=f"Message number {index}",
        )
        Message.objects.filter(pk=message.pk).update(created_at=start + timedelta(minutes=index))
    Message.objects.filter(conversation=conversation, text="The very first message").update(
        created_at=start
    )
    return conversation


def test_earlier_messages_load_and_stay(page: Page, live_server, long_thread):
    page.goto(f"{live_server.url}/inbox/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/inbox/")
    page.wait_for_load_state("load")  # htmx has taken the links over

    page.locator("#conversation-list .conv-row", has_text="Dana Scully").locator(
        ".row-link"
    ).click()
    pane = page.locator("#conversation-pane")
    thread = pane.locator("#thread")
    expect(thread.locator(".msg").last).to_contain_text("Message number 119")
    entries = thread.locator(".msg, .event")  # messages and status changes
    expect(entries).to_have_count(50)
    expect(thread).not_to_contain_text("The very first message")

    earlier = thread.get_by_role("link", name="Show earlier messages")
    earlier.click()
    expect(entries).to_have_count(100)
    earlier.click()
    expect(thread.locator(".msg")).to_have_count(120)
    expect(thread.locator(".msg").first).to_contain_text("The very first message")
    expect(earlier).to_have_count(0)
    expect(page).to_have_url(re.compile(rf"/inbox/c/{long_thread.pk}/$"))

    # A reply re-renders the pane: every message loaded is still there, plus the reply.
    pane.get_by_label("Reply to Dana Scully").fill("Sorry for the wait.")
    pane.get_by_role("button", name="Send reply").click()
    expect(thread.locator(".msg").last).to_contain_text("Sorry for the wait.")
    expect(thread.locator(".msg")).to_have_count(121)
    expect(thread.locator(".msg").first).to_contain_text("The very first message")
