"""Chromium: an agent snoozes a conversation from the pane with a preset; it leaves
the list and waits in the Snoozed view, with its count; Unsnooze brings it back."""

import pytest
from playwright.sync_api import Page, expect

from conversations.transitions import Status
from tests.factories import PASSWORD, ContactFactory, UserFactory, conversation_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_snooze_from_the_pane_and_find_it_in_snoozed(page: Page, live_server):
    UserFactory(username="alice", first_name="Alice", last_name="Martin")
    conversation_in(Status.NEW, contact=ContactFactory(name="Fox Mulder"), text="Any news?")
    conversation_in(Status.NEW, contact=ContactFactory(name="Dana Scully"))
    page.goto(f"{live_server.url}/inbox/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/inbox/")  # loaded: htmx has taken the links over

    rows = page.locator("#conversation-list .conv-row")
    rows.filter(has_text="Fox Mulder").locator(".row-link").click()
    pane = page.locator("#conversation-pane")
    snooze = pane.locator("summary", has_text="Snooze")
    snooze.focus()
    page.keyboard.press("Enter")  # the menu opens from the keyboard
    pane.get_by_role("button", name="Tomorrow morning").click()
    expect(pane.locator(".notice")).to_contain_text("Snoozed until")
    expect(pane.locator(".badge-snoozed")).to_contain_text("Snoozed until")
    expect(pane.locator("#thread .event-snooze")).to_contain_text("by Alice Martin")

    expect(rows.filter(has_text="Fox Mulder")).to_have_count(0)  # the list refreshed itself
    snoozed_view = page.locator(".tab-snoozed")
    expect(snoozed_view.locator(".tab-count")).to_have_text("1")
    snoozed_view.click()
    expect(snoozed_view).to_have_attribute("aria-current", "page")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Fox Mulder")

    rows.first.locator(".row-link").click()
    pane.get_by_role("button", name="Unsnooze").click()
    expect(pane.locator(".notice")).to_contain_text("back in the inbox")
    expect(snoozed_view.locator(".tab-count")).to_have_text("0")
