"""Issue 11.3 in Chromium: when the session has ended, an htmx request (a tab, the
pane) brings the whole login page, not a login form swapped into the list or the
pane; after logging in, the agent is back on the page they were on."""

import re

import pytest
from playwright.sync_api import Page, expect

from conversations.transitions import Status
from tests.factories import PASSWORD, UserFactory, conversation_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _log_in(page: Page) -> None:
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


@pytest.mark.parametrize("what", ["a tab", "a row"])
def test_an_ended_session_sends_the_whole_page_to_the_login(page: Page, live_server, what):
    UserFactory(username="alice")
    conversation_in(Status.NEW)
    page.goto(f"{live_server.url}/login/?next=/inbox/%3Fstatus%3Dnew")
    _log_in(page)
    expect(page.locator("#conversation-list .conv-row")).to_have_count(1)
    # The rows are drawn before the page's scripts run: until htmx has taken the links
    # over (it does when the page has loaded), a click is a plain page load.
    page.wait_for_load_state("load")

    page.context.clear_cookies()  # the session ends (logged out elsewhere, expired)
    if what == "a tab":
        page.locator("#status-tabs a.tab-closed").click()
    else:
        page.locator("#conversation-list .row-link").first.click()

    expect(page).to_have_url(re.compile(r"/login/\?next=%2Finbox%2F%3Fstatus%3Dnew$"))
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.locator("#conversation-list")).to_have_count(0)
    expect(page.locator("#conversation-pane")).to_have_count(0)

    _log_in(page)
    expect(page).to_have_url(re.compile(r"/inbox/\?status=new$"))
    expect(page.locator("#conversation-list .conv-row")).to_have_count(1)
