"""Accessibility in Chromium: axe-core's WCAG 2.0/2.1 A and AA rules on every agent
screen (at 1440 px and at 390 px), the back office's conversation list and the public
web chat; no violation of impact serious or critical may be left. Then the keyboard:
tabbing through the inbox reaches a row, and every stop on the way shows its focus.

axe-core comes from the pip package axe-playwright-python (its bundled axe.min.js);
the page's Content-Security-Policy forbids inline scripts, so the test's browser
context bypasses it to inject axe (docs/decisions.md)."""

from io import StringIO
from pathlib import Path

import axe_playwright_python
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from playwright.sync_api import Browser, Page, expect

from conversations import services, snooze
from conversations.management.commands.seed_demo import DEMO_PASSWORD
from conversations.models import Conversation, SavedReply
from conversations.transitions import Status
from flows.models import Broadcast

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AXE_JS = Path(axe_playwright_python.__file__).with_name("axe.min.js")
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}
# Serious and critical findings keep someone from using a screen (a control without a
# name, text too faint to read); moderate and minor ones are lesser (none are left
# today, but they do not fail the test).
FAILING_IMPACTS = {"serious", "critical"}
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


def axe_violations(page: Page) -> list[dict]:
    """The serious and critical violations axe-core finds on the page as it is now."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=AXE_JS)
    results = page.evaluate("async (opts) => await axe.run(document, opts)", AXE_OPTIONS)
    return [v for v in results["violations"] if v["impact"] in FAILING_IMPACTS]


def describe(screen: str, violation: dict) -> str:
    """One violation as the failure shows it: what, how bad, and each element's fix."""
    nodes = "".join(
        f"\n    {' '.join(map(str, node['target']))}: "
        + " ".join(node.get("failureSummary", "").split())
        for node in violation["nodes"]
    )
    return f"{screen}: {violation['id']} ({violation['impact']}) {violation['help']}{nodes}"


class Audit:
    """Runs axe on each screen visited and keeps every failure, so one run of the test
    lists all that is left to fix."""

    def __init__(self, page: Page, width: str):
        self.page, self.width, self.failures, self.screens = page, width, [], []

    def check(self, screen: str) -> None:
        self.page.wait_for_load_state("load")
        name = f"{screen} @{self.width}"
        self.screens.append(name)
        self.failures += [describe(name, v) for v in axe_violations(self.page)]

    def assert_clean(self) -> None:
        if self.failures:
            pytest.fail(
                f"{len(self.failures)} serious/critical axe violations:\n"
                + "\n".join(self.failures)
            )
        assert self.screens, "no screen was checked"


def demo_data():
    """The demo inbox and flows, plus what the demo lacks: a note mentioning Alice on a
    tagged conversation in progress, one of hers snoozed (the demo snoozes others'),
    and a saved reply of hers."""
    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo_flows", stdout=StringIO())
    conversation = (
        Conversation.objects.filter(status=Status.IN_PROGRESS, tags__isnull=False)
        .not_snoozed()
        .select_related("contact", "assignee")
        .order_by("-last_activity_at")
        .first()
    )
    alice = get_user_model().objects.get(username="alice")
    bob = get_user_model().objects.get(username="bob")
    services.note_add(conversation=conversation, author=bob, text="@alice can you call them?")
    mine = Conversation.objects.filter(status=Status.IN_PROGRESS, assignee=alice).not_snoozed()
    until = {key: moment for key, _, moment in snooze.presets()}["tomorrow"]
    snooze.conversation_snooze(
        conversation=mine.exclude(pk=conversation.pk).first(), until=until, actor=alice
    )
    SavedReply.objects.create(owner=alice, title="Refund policy", body="Refunds take 30 days.")
    return conversation


def log_in(page: Page, url: str, username: str, next_path: str = "/login/") -> None:
    page.goto(f"{url}{next_path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1440", "390"])
def test_agent_screens_have_no_serious_axe_violations(browser: Browser, live_server, viewport):
    conversation = demo_data()
    context = browser.new_context(viewport=viewport, bypass_csp=True)
    page = context.new_page()
    audit = Audit(page, str(viewport["width"]))
    url = live_server.url

    page.goto(f"{url}/chat/web/")
    audit.check("web chat")
    page.get_by_label("Your name").fill("Dana Visitor")
    page.get_by_label("Message").fill("Where is my parcel?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#thread .inbound")).to_contain_text("Where is my parcel?")
    audit.check("web chat with a thread")
    context.clear_cookies()

    page.goto(f"{url}/login/")
    audit.check("login")
    log_in(page, url, "alice")
    expect(page.locator(".tab-needs-me")).to_have_attribute("aria-current", "page")
    expect(page.locator("#conversation-list .conv-row").first).to_be_visible()
    audit.check("inbox Needs me")
    waiting = page.locator("#conversation-list .conv-row").filter(has=page.locator(".waiting"))
    waiting.first.locator(".row-link").click()
    expect(page.locator("#conversation-pane #thread")).to_be_visible()
    audit.check("inbox, a waiting conversation opened from the list")
    page.goto(f"{url}/inbox/")
    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    audit.check("keyboard shortcuts dialog")
    page.keyboard.press("Escape")

    page.goto(f"{url}/inbox/?view=all")
    expect(page.locator("#conversation-list .conv-row").first).to_be_visible()
    boxes = page.locator("#conversation-list .conv-row input[name=ids]")
    boxes.nth(0).check()
    expect(page.locator("#bulk-count")).to_have_text("1 selected")
    audit.check("inbox All, a row ticked")
    page.goto(f"{url}/inbox/?status=in_progress")
    expect(page.locator("#conversation-list .conv-row").first).to_be_visible()
    audit.check("inbox In progress")
    page.locator(".more-filters > summary").click()
    expect(page.locator(".filter-grid")).to_be_visible()
    audit.check("inbox filters open")
    page.locator(".tab-snoozed").click()
    expect(page.locator(".tab-snoozed")).to_have_attribute("aria-current", "page")
    snoozed = int(page.locator('[data-view-count="snoozed"]').inner_text())
    expect(page.locator("#conversation-list .conv-row")).to_have_count(snoozed)
    audit.check("inbox Snoozed")

    page.goto(f"{url}/inbox/c/{conversation.pk}/")
    pane = page.locator("#conversation-pane")
    expect(pane.locator("#pane-title")).to_have_text(conversation.contact.display_name)
    expect(pane.locator("#thread .note")).to_contain_text("can you call them?")
    expect(pane.locator(".tag-list .tag").first).to_be_visible()
    audit.check("conversation pane")
    pane.locator("summary", has_text="Snooze").click()
    expect(pane.get_by_role("button", name="Tomorrow morning")).to_be_visible()
    audit.check("pane snooze menu open")
    pane.locator(".composer-mode label", has_text="Private note").click()
    expect(pane.get_by_label("Private note (agents only)")).to_be_visible()
    audit.check("pane note composer")
    pane.get_by_role("link", name="Edit contact").click()
    expect(page.get_by_label("Name", exact=True)).to_be_visible()
    audit.check("pane contact form")

    page.get_by_role("button", name="Save contact").click()
    expect(page.locator("#pane-notices")).to_contain_text("Contact saved.")
    audit.check("pane with a notice")
    archived = Conversation.objects.archived().first()
    page.goto(f"{url}/inbox/c/{archived.pk}/")
    expect(page.locator("#conversation-pane .lock-note")).to_be_visible()
    audit.check("pane of an archived conversation")
    page.locator(".availability button").click()
    expect(page.locator(".availability button")).to_have_attribute("aria-pressed", "true")
    audit.check("pane, the agent away")
    page.locator(".availability button").click()
    expect(page.locator(".availability button")).to_have_attribute("aria-pressed", "false")

    page.goto(f"{url}/inbox/mentions/")
    expect(page.locator(".mention-item").first).to_contain_text("can you call them?")
    audit.check("mentions")
    page.goto(f"{url}/inbox/replies/")
    expect(page.get_by_role("heading", name="Refund policy")).to_be_visible()
    audit.check("saved replies")
    page.goto(f"{url}/inbox/replies/new/")
    audit.check("saved reply form")
    page.goto(f"{url}/contacts/")
    audit.check("contacts")
    page.goto(f"{url}/contacts/{conversation.contact_id}/")
    audit.check("contact page")
    page.goto(f"{url}/flows/")
    expect(page.locator("#broadcast-preview")).to_contain_text("Everyone:")
    audit.check("flows and broadcasts")
    page.goto(f"{url}/flows/start/{conversation.pk}/")
    audit.check("start a flow")
    page.goto(f"{url}/flows/broadcasts/{Broadcast.objects.first().pk}/")
    audit.check("broadcast")
    page.goto(f"{url}/reports/")
    expect(page.get_by_role("heading", name="Reports", exact=True)).to_be_visible()
    audit.check("reports")
    context.close()
    audit.assert_clean()


def test_staff_screens_have_no_serious_axe_violations(browser: Browser, live_server):
    demo_data()
    context = browser.new_context(viewport=DESKTOP, bypass_csp=True)
    page = context.new_page()
    audit = Audit(page, "1440")
    log_in(page, live_server.url, "admin", "/admin/login/?next=/admin/")
    page.goto(f"{live_server.url}/admin/conversations/conversation/")
    expect(page.locator("#result_list")).to_be_visible()
    audit.check("admin conversations")
    page.goto(f"{live_server.url}/reports/")
    audit.check("reports, every agent")
    page.goto(f"{live_server.url}/flows/")
    page.get_by_label("Send to").select_option("tag")
    expect(page.locator("#broadcast-preview")).to_contain_text("Choose a tag.")
    audit.check("flows, a broadcast allowed")
    context.close()
    audit.assert_clean()


# The outline and box-shadow of an element and of its ::before and ::after (a row's
# ring is drawn by its link's ::after, over the whole row).
RING = """(el) => [getComputedStyle(el), getComputedStyle(el, '::before'),
                getComputedStyle(el, '::after')]
    .map(s => [s.outlineStyle === 'none' || parseFloat(s.outlineWidth) === 0
                 ? 'none' : `${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor}`,
               s.boxShadow].join(' / '))"""
STOP = """(el) => `${el.tagName.toLowerCase()}${el.className ? '.' + el.className : ''}`
    + ` "${(el.getAttribute('aria-label') || el.textContent).trim().replace(/\\s+/g, ' ')
          .slice(0, 30)}"`"""


def shows_focus(page: Page) -> bool:
    """The focused element draws an outline or a shadow that it does not draw unfocused
    (the current tab's inset bar is there with or without the focus)."""
    focused = page.evaluate(f"({RING})(document.activeElement)")
    unfocused = page.evaluate(
        f"() => {{ const el = document.activeElement; el.blur(); const ring = ({RING})(el);"
        " el.focus(); return ring; }"
    )
    assert page.evaluate("() => document.activeElement.matches(':focus-visible')")
    return focused != unfocused and any(
        part != "none" for ring in focused for part in ring.split(" / ")
    )


def test_tabbing_reaches_a_row_and_every_stop_shows_its_focus(page: Page, live_server):
    demo_data()
    page.set_viewport_size(DESKTOP)
    log_in(page, live_server.url, "alice")
    expect(page.locator("#conversation-list .conv-row").first).to_be_visible()
    stops, unmarked = [], []
    for _ in range(80):
        page.keyboard.press("Tab")
        stop = page.evaluate(f"({STOP})(document.activeElement)")
        stops.append(stop)
        if not shows_focus(page):
            unmarked.append(stop)
        if page.evaluate("() => document.activeElement.matches('.conv-row .row-link')"):
            break
    else:
        pytest.fail(f"80 presses of Tab never reached a conversation row: {stops}")
    assert stops[0].startswith('a.skip-link "Skip to content"'), stops
    assert unmarked == [], f"focused without a visible outline: {unmarked}"


# The contrast of a text box's border against what is behind it (WCAG 2.1 1.4.11,
# non-text contrast, AA: 3:1), which axe does not check: an empty box is found by its
# border alone. Buttons are left out (their text names them).
BORDERS = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => v / 255)
      .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4))
      .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const behind = (el) => {
    for (let node = el.parentElement; node; node = node.parentElement) {
      const [r, g, b, a = 1] = rgb(getComputedStyle(node).backgroundColor);
      if (a > 0) return [r, g, b];
    }
    return [255, 255, 255];
  };
  const boxes = document.querySelectorAll(
    'input[type=text], input[type=search], input[type=password], input[type=date], ' +
    'input:not([type]), select, textarea');
  return [...boxes].filter((el) => el.offsetParent !== null).map((el) => {
    const [a, b] = [lum(rgb(getComputedStyle(el).borderTopColor)), lum(behind(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    return [el.name || el.id, Math.round(ratio * 100) / 100];
  });
}"""


def test_text_boxes_are_outlined_at_three_to_one_against_their_background(page: Page, live_server):
    conversation = demo_data()
    page.set_viewport_size(DESKTOP)
    log_in(page, live_server.url, "alice")
    expect(page.locator("#conversation-list .conv-row").first).to_be_visible()
    measured = page.evaluate(BORDERS)
    page.goto(f"{live_server.url}/inbox/c/{conversation.pk}/contact/")
    measured += page.evaluate(BORDERS)
    page.goto(f"{live_server.url}/inbox/c/{conversation.pk}/")
    page.locator(".composer-mode label", has_text="Private note").click()
    expect(page.get_by_label("Private note (agents only)")).to_be_visible()
    measured += page.evaluate(BORDERS)
    page.goto(f"{live_server.url}/chat/web/")
    measured += page.evaluate(BORDERS)

    assert len(measured) >= 8, measured  # search, reply, tag, assignee, the contact form…
    faint = [(name, ratio) for name, ratio in measured if ratio < 3]
    assert faint == [], f"text boxes whose border is under 3:1: {faint}"
