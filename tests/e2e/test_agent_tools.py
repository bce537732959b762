"""#15 in Chromium: private notes with a mention, a saved reply through "/", and the
keyboard-only triage loop. Screenshots go to pytest's temporary directory; with
UPDATE_SCREENSHOTS=1 they also replace docs/screenshots/notes.png,
saved-replies.png and shortcuts.png."""

import os
import shutil

import pytest
from playwright.sync_api import Page, expect

from conversations import services
from conversations.models import Conversation, Mention, SavedReply
from conversations.transitions import Status
from tests.factories import PASSWORD, ContactFactory, UserFactory

from .test_inbox_screenshots import DOCS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def log_in(page: Page, url: str, username: str) -> None:
    page.goto(f"{url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".topbar-user")).to_be_visible()


def keep(tmp_path, name: str) -> None:
    if os.environ.get("UPDATE_SCREENSHOTS"):
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / name, DOCS / name)


def test_a_note_mentions_an_agent_and_never_reaches_the_contact(
    live_server, browser, page, tmp_path
):
    UserFactory(username="alice", first_name="Alice")
    bob = UserFactory(username="bob", first_name="Bob")
    # The contact writes in the web chat.
    page.goto(f"{live_server.url}/chat/web/")
    page.get_by_label("Your name").fill("Dana Visitor")
    page.get_by_label("Message").fill("Where is my parcel?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#thread .inbound")).to_contain_text("Where is my parcel?")
    conversation = Conversation.objects.get(contact__name="Dana Visitor")

    alice = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    log_in(alice, live_server.url, "alice")
    alice.goto(f"{live_server.url}/inbox/c/{conversation.pk}/")
    alice.locator(".composer-mode label", has_text="Private note").click()
    note = alice.get_by_label("Private note (agents only)")
    expect(note).to_be_visible()
    expect(alice.locator("textarea[name=text]")).to_be_hidden()
    note.press_sequentially("@bo", delay=20)
    suggestions = alice.get_by_role("listbox", name="Agents to mention")
    expect(suggestions.get_by_role("option").first).to_contain_text("@bob")
    note.press("Enter")
    expect(note).to_have_value("@bob ")
    note.press_sequentially("can you check the carrier? Secret code 4711")
    alice.get_by_role("button", name="Add note").click()
    thread_note = alice.locator("#thread .note")
    expect(thread_note).to_contain_text("can you check the carrier?")
    expect(thread_note.locator(".mention")).to_have_text("@bob")
    expect(alice.locator("#pane-status")).to_contain_text("New")
    # The composer stays in note mode, emptied; the reply box stays hidden.
    expect(alice.get_by_label("Private note (agents only)")).to_have_value("")
    expect(alice.locator("textarea[name=text]")).to_be_hidden()
    alice.screenshot(path=tmp_path / "notes.png")
    keep(tmp_path, "notes.png")

    # Bob sees it among his Mentions, unread, with a count.
    bobs = browser.new_context().new_page()
    log_in(bobs, live_server.url, "bob")
    bobs.goto(f"{live_server.url}/inbox/")
    expect(bobs.locator('[data-view-count="mentions"]')).to_contain_text("1")
    bobs.get_by_role("link", name="Mentions").click()
    item = bobs.locator(".mention-item").first
    expect(item).to_contain_text("Unread")
    expect(item).to_contain_text("Alice")
    expect(item).to_contain_text("can you check the carrier?")
    item.get_by_role("link").click()
    expect(bobs.locator("#thread .note")).to_contain_text("Secret code 4711")
    bobs.wait_for_timeout(500)
    assert Mention.objects.get(agent=bob).read_at is not None

    # The contact's web chat never shows it.
    page.reload()
    expect(page.locator("#thread")).to_contain_text("Where is my parcel?")
    expect(page.locator("body")).not_to_contain_text("Secret code")
    assert conversation.messages.count() == 1


def test_a_saved_reply_with_placeholders_through_slash(live_server, page: Page, tmp_path):
    alice = UserFactory(username="alice", first_name="Alice", last_name="Archer")
    SavedReply.objects.create(owner=alice, title="Refund policy", body="Refunds take 30 days.")
    SavedReply.objects.create(
        owner=UserFactory(username="bob"),
        title="Greeting",
        body="Hello {{contact.first_name}}, {{agent.first_name}} here. How can I help?",
        shared=True,
    )
    contact = ContactFactory(name="Dana <i>Reyes</i>")
    services.message_receive(channel=contact.channel, external_id=contact.external_id, text="Hi")
    conversation = contact.conversations.get()
    page.set_viewport_size({"width": 1440, "height": 900})
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/inbox/c/{conversation.pk}/")
    box = page.locator("textarea[name=text]")
    box.press_sequentially("/gre", delay=30)
    listbox = page.get_by_role("listbox", name="Saved replies")
    expect(listbox.get_by_role("option")).to_have_count(1)
    expect(listbox.get_by_role("option").first).to_have_attribute("aria-selected", "true")
    box.press("Backspace")
    box.press("Backspace")
    box.press("Backspace")
    expect(listbox.get_by_role("option")).to_have_count(2)
    page.screenshot(path=tmp_path / "saved-replies.png")
    keep(tmp_path, "saved-replies.png")
    box.press("ArrowDown")
    expect(listbox.get_by_role("option").nth(1)).to_have_attribute("aria-selected", "true")
    box.press("ArrowUp")
    option = listbox.get_by_role("option").nth(0)
    expect(option).to_contain_text("Greeting")
    box.press("Enter")
    expect(box).to_have_value("Hello Dana, Alice here. How can I help?")
    expect(listbox).to_have_count(0)
    box.press("Control+Enter")
    expect(page.locator("#thread .msg-outbound").last).to_contain_text("Hello Dana, Alice here.")


def test_keyboard_only_triage_loop(live_server, page: Page, tmp_path):
    UserFactory(username="alice", first_name="Alice")
    firsts = []
    for name in ("Ann First", "Ben Second"):
        contact = ContactFactory(name=name)
        services.message_receive(
            channel=contact.channel, external_id=contact.external_id, text=f"Help {name}"
        )
        firsts.append(contact.conversations.get())
    page.set_viewport_size({"width": 1440, "height": 900})
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/inbox/?status=new")
    rows = page.locator("#conversation-list .conv-row")
    expect(rows).to_have_count(2)
    first_id = rows.first.get_attribute("data-id")

    page.keyboard.press("?")
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Assign to me")
    page.screenshot(path=tmp_path / "shortcuts.png")
    keep(tmp_path, "shortcuts.png")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # j focuses the first row, Enter opens it, r replies, Ctrl+Enter sends, e closes.
    page.keyboard.press("j")
    expect(rows.first.locator(".row-link")).to_be_focused()
    page.keyboard.press("Enter")
    pane = page.locator("#conversation-pane")
    expect(pane).to_have_attribute("data-conversation", first_id)
    page.keyboard.press("r")
    reply = pane.locator("textarea[name=text]")
    expect(reply).to_be_focused()
    page.keyboard.type("We are on it.")
    page.keyboard.press("Control+Enter")
    expect(pane.locator(".msg-outbound")).to_contain_text("We are on it.")
    # Shortcuts never fire while typing (the box keeps the focus); Esc leaves it.
    expect(reply).to_be_focused()
    page.keyboard.press("e")
    expect(reply).to_have_value("e")
    page.keyboard.press("Backspace")
    page.keyboard.press("Escape")
    page.keyboard.press("e")
    expect(pane.locator("#pane-status")).to_contain_text("Closed")
    # The next New conversation: j, Enter.
    expect(rows).to_have_count(1)
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    second_id = str(next(c.pk for c in firsts if str(c.pk) != first_id))
    expect(pane).to_have_attribute("data-conversation", second_id)
    # i assigns it to me; x selects its row; / focuses the search.
    page.keyboard.press("i")
    expect(pane.locator(".pane-notices")).to_contain_text("Assigned to you.")
    expect(rows.first.locator(".row-assignee")).to_contain_text("Alice")  # the list refreshed
    page.keyboard.press("x")
    expect(page.locator("#bulk-count")).to_have_text("1 selected")
    page.keyboard.press("/")
    expect(page.locator("#id_q")).to_be_focused()
    assert Conversation.objects.get(pk=first_id).status == Status.CLOSED


def test_a_live_refresh_of_the_list_keeps_the_keyboard_on_its_row(live_server, page: Page):
    """j focuses a row; the list is then replaced by a refresh (a change elsewhere):
    the focus is on the same conversation's row again, so Enter still opens it."""
    UserFactory(username="alice", first_name="Alice")
    for name in ("Ann First", "Ben Second"):
        contact = ContactFactory(name=name)
        services.message_receive(
            channel=contact.channel, external_id=contact.external_id, text=f"Help {name}"
        )
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/inbox/?status=new")
    rows = page.locator("#conversation-list .conv-row")
    expect(rows).to_have_count(2)
    page.keyboard.press("j")
    page.keyboard.press("j")
    focused_id = rows.nth(1).get_attribute("data-id")
    expect(rows.nth(1).locator(".row-link")).to_be_focused()
    old_list = page.locator("#conversation-list").element_handle()

    page.evaluate("htmx.trigger('#conversation-list', 'conversationChanged')")
    page.wait_for_function("(old) => !old.isConnected", arg=old_list)  # replaced
    expect(
        page.locator(f'#conversation-list .conv-row[data-id="{focused_id}"] .row-link')
    ).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#conversation-pane")).to_have_attribute("data-conversation", focused_id)
