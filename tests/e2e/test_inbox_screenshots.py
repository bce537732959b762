"""The inbox on the demo data, as the README shows it: every asset loads, no script
error, and the two screenshots.

The screenshots go to pytest's temporary directory; with UPDATE_SCREENSHOTS=1 they
also replace docs/screenshots/inbox.png and pane.png.
"""

import os
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from conversations.management.commands.seed_demo import DEMO_PASSWORD
from conversations.models import Conversation
from conversations.transitions import Status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def test_inbox_and_pane_on_the_demo_data(page: Page, live_server, tmp_path):
    call_command("seed_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    errors, failed = [], []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
    page.set_viewport_size({"width": 1440, "height": 900})

    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # She lands on what needs her (#15); then the whole inbox.
    expect(page.locator(".tab-needs-me")).to_have_attribute("aria-current", "page")
    page.goto(f"{live_server.url}/inbox/?view=all")
    expect(page.locator("#conversation-list .conv-row").first).to_be_visible()
    shown = Conversation.objects.not_archived().not_snoozed().count()
    expect(page.locator('[data-view-count="snoozed"]')).to_have_text("2")
    expect(page.locator('[data-tab-count="all"]')).to_have_text(str(shown))
    # Two rows ticked, so the bulk actions show.
    boxes = page.locator("#conversation-list .conv-row input[name=ids]")
    boxes.nth(2).check()
    boxes.nth(3).check()
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    page.screenshot(path=tmp_path / "inbox.png")
    boxes.nth(2).uncheck()
    boxes.nth(3).uncheck()

    # A conversation with a thread, tags and an agent.
    conversation = (
        Conversation.objects.filter(status=Status.IN_PROGRESS, tags__isnull=False)
        .not_snoozed()
        .order_by("-last_activity_at")
        .first()
    )
    row = page.locator(f'#conversation-list .conv-row[data-id="{conversation.pk}"]')
    row.locator(".row-link").click()
    pane = page.locator("#conversation-pane")
    expect(pane.locator("#pane-title")).to_have_text(conversation.contact.display_name)
    expect(pane.locator(".msg").first).to_be_visible()
    page.screenshot(path=tmp_path / "pane.png")

    assert errors == []
    assert failed == []
    if os.environ.get("UPDATE_SCREENSHOTS"):
        DOCS.mkdir(parents=True, exist_ok=True)
        for name in ("inbox.png", "pane.png"):
            shutil.copyfile(tmp_path / name, DOCS / name)
