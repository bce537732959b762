"""The back office in Chromium: a staff user logs in, sees every status, closes a
conversation with an action, and sees the refusal for one that cannot be closed."""

import re

import pytest
from playwright.sync_api import expect

from conversations.models import Conversation
from tests.factories import PASSWORD, StaffFactory, conversation_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_staff_closes_conversations_from_the_admin(page, live_server):
    StaffFactory(username="root")
    conversations = {
        status: conversation_in(status)
        for status in ("not_contacted", "new", "in_progress", "in_flow", "closed")
    }

    page.goto(f"{live_server.url}/admin/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{live_server.url}/admin/conversations/conversation/")

    results = page.locator("#result_list")
    for label in ("Not contacted", "New", "In progress", "In a flow", "Closed"):
        expect(results.locator(".parley-status", has_text=re.compile(f"^{label}$"))).to_have_count(
            1
        )

    for key in ("new", "closed"):
        page.locator(f'input[name="_selected_action"][value="{conversations[key].pk}"]').check()
    page.select_option('select[name="action"]', "close_conversations")
    page.get_by_role("button", name="Run").click()

    expect(page.locator(".messagelist")).to_contain_text("1 conversation closed.")
    expect(page.locator(".messagelist")).to_contain_text(
        f"#{conversations['closed'].pk} not closed"
    )
    assert Conversation.objects.get(pk=conversations["new"].pk).status == "closed"
