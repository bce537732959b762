"""#15: every page at 390 × 844 (a phone): no horizontal scroll, the top bar's
controls on screen, and a screenshot of each (with UPDATE_SCREENSHOTS=1 they replace
docs/screenshots/mobile-*.png)."""

import os
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from conversations import services
from conversations.management.commands.seed_demo import DEMO_PASSWORD
from conversations.models import Contact, Conversation
from conversations.transitions import Status
from flows.models import Broadcast
from tests.factories import UserFactory, conversation_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
OVERFLOW = "() => [document.scrollingElement.scrollWidth, window.innerWidth]"


def check(page: Page, name: str) -> None:
    """No horizontal scroll, every top-bar control inside the screen; a screenshot."""
    page.wait_for_load_state("networkidle")
    scroll_width, width = page.evaluate(OVERFLOW)
    assert scroll_width <= width, f"{name}: {scroll_width}px wide in a {width}px screen"
    outside = page.evaluate(
        """() => [...document.querySelectorAll('.topbar a, .topbar button')]
              .filter(el => { const r = el.getBoundingClientRect();
                              return r.width > 0 && (r.left < 0 || r.right > innerWidth); })
              .map(el => el.textContent.trim())"""
    )
    # The nav scrolls inside itself; "Log out" and the brand must be on screen.
    assert not [label for label in outside if label in ("Log out", "Parley")], (name, outside)
    shot = page.screenshot()  # taken on every run; docs/ updated only when asked
    if os.environ.get("UPDATE_SCREENSHOTS"):
        (DOCS / f"mobile-{name}.png").write_bytes(shot)


def test_every_page_fits_a_390px_screen(page: Page, live_server):
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    call_command("seed_demo_flows", stdout=open(os.devnull, "w"))  # noqa: SIM115
    page.set_viewport_size({"width": 390, "height": 844})
    url = live_server.url

    page.goto(f"{url}/chat/web/")
    check(page, "chat")
    page.goto(f"{url}/login/")
    check(page, "login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#conversation-list")).to_be_visible()
    check(page, "inbox")
    page.locator(".more-filters > summary").click()
    check(page, "inbox-filters")
    page.goto(f"{url}/inbox/?view=all")
    boxes = page.locator("#conversation-list .conv-row input[name=ids]")
    boxes.nth(0).check()
    expect(page.locator("#bulk-count")).to_have_text("1 selected")
    check(page, "bulk")

    conversation = (
        Conversation.objects.filter(status=Status.IN_PROGRESS, tags__isnull=False)
        .order_by("-last_activity_at")
        .first()
    )
    page.goto(f"{url}/inbox/c/{conversation.pk}/")
    expect(page.locator("#pane-title")).to_be_visible()
    check(page, "pane")
    page.get_by_role("link", name="Edit contact").click()
    expect(page.get_by_label("Name", exact=True)).to_be_visible()
    check(page, "contact-form")
    page.get_by_role("button", name="Save contact").click()
    expect(page.locator("#pane-notices")).to_contain_text("Contact saved.")
    check(page, "pane-notice")
    # The notice sits above the thread, not over it.
    notice = page.locator("#pane-notices").bounding_box()
    thread = page.locator("#thread").bounding_box()
    assert notice["y"] + notice["height"] <= thread["y"] + 1

    page.goto(f"{url}/contacts/{conversation.contact_id}/")
    check(page, "contact")
    page.goto(f"{url}/contacts/?q={Contact.objects.first().name.split()[0]}")
    check(page, "contacts")
    page.goto(f"{url}/flows/")
    check(page, "flows")
    page.goto(f"{url}/flows/broadcasts/{Broadcast.objects.first().pk}/")
    check(page, "broadcast")


def test_a_long_tag_is_cut_short_in_the_row_and_the_pane(page: Page, live_server):
    """A 50-letter tag (the longest allowed) keeps the row's assignee in view and the
    phone's page from scrolling sideways; its full name is in the title."""
    long_name = "x" * 50
    conversation = conversation_in(Status.IN_PROGRESS)
    services.conversation_tag_add(conversation=conversation, tag=long_name)
    agent = UserFactory(username="dana")
    agent.set_password(DEMO_PASSWORD)
    agent.save()
    url = live_server.url
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{url}/login/")
    page.get_by_label("Username").fill("dana")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    for path in ("/inbox/?view=all", f"/inbox/c/{conversation.pk}/", "/contacts/"):
        page.goto(f"{url}{path}")
        page.wait_for_load_state("networkidle")
        scroll_width, width = page.evaluate(OVERFLOW)
        assert scroll_width <= width, f"{path}: {scroll_width}px wide in a {width}px screen"

    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{url}/inbox/?view=all")
    row = page.locator(f'#conversation-list .conv-row[data-id="{conversation.pk}"]')
    tag = row.locator(".tag")
    expect(tag).to_have_attribute("title", long_name)
    row_box, tag_box = row.bounding_box(), tag.bounding_box()
    assert tag_box["x"] + tag_box["width"] <= row_box["x"] + row_box["width"]
    expect(row.locator(".row-assignee")).to_be_in_viewport()
    assignee = row.locator(".row-assignee").bounding_box()
    assert assignee["x"] + assignee["width"] <= row_box["x"] + row_box["width"]
