"""In Chromium: the Reports page opens from the top bar, a custom range is chosen in
the form (the URL holds it), and a number is read from a table view. With
UPDATE_SCREENSHOTS=1 the screenshots replace docs/screenshots/reports-*.png."""

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.factories import UserFactory
from tests.reports.history import D2, busy_fortnight, make

from .test_flows_start import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def test_switch_the_range_and_read_the_table(page, live_server, tmp_path):
    alice, bob = UserFactory(username="alice", first_name="Alice"), UserFactory(username="bob")
    make(alice, bob)
    busy_fortnight([alice, bob], D2)
    UserFactory(username="root", is_staff=True)
    log_in(page, live_server, "root")
    page.get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", name="Reports", exact=True)).to_be_visible()
    page.locator("#id_range").select_option("custom")
    page.locator("#id_start").fill("2025-03-03")
    page.locator("#id_end").fill("2025-03-04")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*start=2025-03-03.*end=2025-03-04"))
    section = page.locator("#report-opened-closed")
    section.get_by_text("Table of the numbers").click()
    row = section.locator("tbody tr").filter(has_text="2025-03-03")
    # The hand-made history opened 2 on D1, plus the fortnight's conversations of D1.
    assert int(row.locator("td").nth(0).inner_text()) >= 2
    expect(page.locator("#report-statuses svg title").first).to_have_text(
        "Conversations in each status at the end of each day"
    )
    page.goto(f"{live_server.url}/reports/?range=custom&start=2025-02-19&end=2025-03-04")
    page.set_viewport_size({"width": 1280, "height": 900})
    shots = {
        "reports-volume.png": "#report-opened-closed",
        "reports-statuses.png": "#report-statuses",
        "reports-speed.png": "#report-first-response-time",
        "reports-agents.png": "#report-agents",
        "reports-busiest-hours.png": "#report-busiest-hours",
    }
    page.locator("#report-agents details").evaluate("d => d.open = true")
    for name, selector in shots.items():
        page.locator(selector).screenshot(path=tmp_path / name)
        if os.environ.get("UPDATE_SCREENSHOTS"):
            shutil.copy(tmp_path / name, DOCS / name)
