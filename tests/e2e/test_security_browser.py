"""Issue 7 in Chromium: hostile HTML/JS in contact names, messages and tag names is
shown as text and never runs, on every page that shows them; and no page breaks
the Content-Security-Policy (no inline or eval'd script anywhere)."""

import pytest
from playwright.sync_api import Page, expect

from conversations import services
from conversations.models import Tag
from tests.factories import PASSWORD, StaffFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PAYLOADS = [
    '<img src=x onerror="window.__xss=1">',
    "<script>window.__xss=2</script>",
    '"><svg onload="window.__xss=3">',
]
NAME = PAYLOADS[0] + " Mallory"
TEXT = "Hi " + PAYLOADS[1] + PAYLOADS[2]
TAG = '<img src=x onerror="window.__xss=4">'


@pytest.fixture
def hostile(db):
    UserFactory(username="alice")
    StaffFactory(username="root")
    inbound = services.message_receive(channel="web", external_id="mallory", text=TEXT, name=NAME)
    conversation = inbound.conversation
    services.conversation_tag_add(conversation=conversation, tag=TAG)
    return conversation


def _watch(page: Page) -> list[str]:
    """Collect console errors and CSP violation reports of the page."""
    problems: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return problems


def _log_in(page: Page, live_server, username: str, path: str) -> None:
    page.goto(f"{live_server.url}/login/?next={path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def _assert_nothing_ran(page: Page) -> None:
    assert page.evaluate("window.__xss") is None, "injected script ran"


def test_hostile_text_is_shown_escaped_in_the_inbox(page: Page, live_server, hostile):
    problems = _watch(page)
    _log_in(page, live_server, "alice", "/inbox/")
    row = page.locator("#conversation-list .conv-row").first
    expect(row).to_contain_text("Mallory")
    expect(row).to_contain_text(TAG)  # the tag name, as text
    _assert_nothing_ran(page)

    page.goto(f"{live_server.url}/inbox/c/{hostile.pk}/")
    expect(page.locator("#thread")).to_contain_text(PAYLOADS[1])
    expect(page.locator("body")).to_contain_text(NAME)
    _assert_nothing_ran(page)

    page.goto(f"{live_server.url}/contacts/{hostile.contact_id}/")
    expect(page.locator("body")).to_contain_text(NAME)
    _assert_nothing_ran(page)

    # Search for the payload itself: echoed back in the search box, not run.
    page.goto(f"{live_server.url}/inbox/?q=%3Cscript%3Ewindow.__xss%3D2%3C%2Fscript%3E")
    expect(page.locator("#conversation-list .conv-row")).to_have_count(1)
    _assert_nothing_ran(page)
    assert not [p for p in problems if "Content Security Policy" in p], problems


def test_hostile_text_is_shown_escaped_in_the_admin(page: Page, live_server, hostile):
    problems = _watch(page)
    _log_in(page, live_server, "root", "/admin/conversations/conversation/")
    expect(page.locator("#result_list")).to_contain_text("Mallory")
    _assert_nothing_ran(page)
    page.goto(f"{live_server.url}/admin/conversations/conversation/{hostile.pk}/change/")
    expect(page.locator("body")).to_contain_text(PAYLOADS[1])
    _assert_nothing_ran(page)
    page.goto(f"{live_server.url}/admin/conversations/tag/")
    expect(page.locator("#result_list")).to_contain_text(TAG)
    _assert_nothing_ran(page)
    assert Tag.objects.get().name == TAG
    assert not [p for p in problems if "Content Security Policy" in p], problems


def test_pages_keep_to_the_content_security_policy(page: Page, live_server, hostile):
    """Every page an agent or an admin uses, with its scripts running, and no
    console error (a CSP violation is reported as one)."""
    problems = _watch(page)
    response = page.goto(f"{live_server.url}/login/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"

    _log_in(page, live_server, "root", "/inbox/")
    for path in (
        "/inbox/",
        f"/inbox/c/{hostile.pk}/",
        f"/contacts/{hostile.contact_id}/",
        "/inbox/?archived=yes",
        "/admin/",
        "/admin/conversations/conversation/",
        f"/admin/conversations/conversation/{hostile.pk}/change/",
        f"/admin/conversations/contact/{hostile.contact_id}/change/",
        "/api/v1/docs",
    ):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
    # htmx works under the policy: open the pane from the list without a reload.
    page.goto(f"{live_server.url}/inbox/")
    page.locator("#conversation-list .conv-row .row-link").first.click()
    expect(page.locator("#conversation-pane")).to_contain_text("Mallory")
    assert problems == [], problems
