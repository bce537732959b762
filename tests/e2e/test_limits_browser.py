"""Issue 12 in Chromium: the web chat shows the visitor the sentence of a refused
(rate-limited) message and keeps the draft; the login page shows the lockout."""

import pytest
from playwright.sync_api import expect

from conversations.models import Message
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_chat_shows_the_visitor_why_a_message_was_refused(live_server, page, settings):
    settings.CHAT_LIMITS = {**settings.CHAT_LIMITS, "messages_per_visitor": "2/1m"}
    page.goto(f"{live_server.url}/chat/web/")
    box = page.get_by_label("Message")
    for n in range(2):
        box.fill(f"message {n}")
        page.get_by_role("button", name="Send").click()
        expect(page.locator("#thread .inbound")).to_have_count(n + 1)
    box.fill("one too many")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("alert")).to_contain_text("You are sending messages too fast")
    expect(box).to_have_value("one too many")
    assert Message.objects.count() == 2


def test_the_login_page_says_it_is_locked(live_server, page, settings):
    settings.AXES_FAILURE_LIMIT = 3
    UserFactory(username="dora")
    page.goto(f"{live_server.url}/login/")
    for _ in range(3):
        page.get_by_label("Username").fill("dora")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
    page.get_by_label("Username").fill("dora")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Too many failed log-ins")
    expect(page).to_have_url(f"{live_server.url}/login/")
