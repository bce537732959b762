"""What an agent is typing or choosing survives the pane's and the list's refreshes
(their own actions' and the live ones): a draft when they close the conversation
themselves, an open contact form and half-filled fields when the contact writes,
the place in a long list; and the live counts and presence follow what happened
(a mention read, a reply sent). Chromium, on Django's live server, or on the ASGI
server where the test needs the event stream (tests/e2e/test_realtime.py)."""

import pytest
from playwright.sync_api import expect

from conversations import services
from conversations.models import Contact, Conversation, Mention
from tests.factories import UserFactory

from .test_realtime import log_in, open_live

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PANE = "#conversation-pane"
LIST = "#conversation-list"


@pytest.fixture(autouse=True)
def _fast_password_hashing():
    """The ASGI server is another process, with the production password hashers:
    users made here must log in there (as in test_realtime)."""


def inbound(name: str, external_id: str, text: str = "Hello, I need help") -> Conversation:
    services.message_receive(channel="sms", external_id=external_id, text=text, name=name)
    return Conversation.objects.get(contact__external_id=external_id)


def refreshed(page, selector: str, event: str) -> None:
    """Fire the refresh event the live stream (or the heartbeat) fires, and wait until
    ``selector`` has been replaced by the answer."""
    old = page.locator(selector).element_handle()
    page.evaluate("(name) => htmx.trigger(document.body, name)", event)
    page.wait_for_function("(old) => !old.isConnected", arg=old)


def test_closing_it_oneself_keeps_the_reply_being_typed(live_server, browser):
    UserFactory(username="alice", first_name="Alice", last_name="")
    by_button = inbound("Dee Draft", "+3301")
    by_key = inbound("Kay Key", "+3302")
    snoozed = inbound("Sam Snooze", "+3303")
    alice = log_in(browser, live_server.url, "alice")
    pane = alice.locator(PANE)
    reply = pane.locator("textarea[name=text]")
    kept = alice.locator("#kept-draft textarea")

    # The Close button: the text goes below, copyable, and stays there when the pane
    # refreshes (the echo of the close itself, a message, the heartbeat).
    alice.goto(f"{live_server.url}/inbox/c/{by_button.pk}/")
    reply.fill("Important unsent answer with refund details")
    pane.get_by_role("button", name="Close").click()
    expect(alice.locator("#pane-status")).to_contain_text("Closed")
    expect(kept).to_have_value("Important unsent answer with refund details")
    refreshed(alice, PANE, "paneRefresh")
    expect(alice.locator("#pane-status")).to_contain_text("Closed")
    expect(kept).to_have_value("Important unsent answer with refund details")
    expect(alice.locator("#kept-draft")).to_be_visible()

    # Esc, then e.
    alice.goto(f"{live_server.url}/inbox/c/{by_key.pk}/")
    reply.fill("Typed before the shortcut")
    alice.keyboard.press("Escape")
    alice.keyboard.press("e")
    expect(alice.locator("#pane-status")).to_contain_text("Closed")
    refreshed(alice, PANE, "paneRefresh")
    expect(kept).to_have_value("Typed before the shortcut")

    # Snoozed, it stays open: the text stays in the reply box, through refreshes.
    alice.goto(f"{live_server.url}/inbox/c/{snoozed.pk}/")
    reply.fill("Still typing this one")
    pane.locator(".snooze-menu summary").click()
    pane.locator(".snooze-form [name=preset]").first.click()
    expect(alice.locator("#pane-status")).to_contain_text("Snoozed until")
    refreshed(alice, PANE, "paneRefresh")
    expect(reply).to_have_value("Still typing this one")


def test_a_live_refresh_keeps_the_open_contact_form_and_half_filled_fields(asgi_server, browser):
    UserFactory(username="alice", first_name="Alice", last_name="")
    bob = UserFactory(username="bob", first_name="Bob", last_name="")
    conversation = inbound("Zed Old", "+3304", "first")
    alice = open_live(browser, asgi_server, "alice", f"{asgi_server}/inbox/c/{conversation.pk}/")
    pane = alice.locator(PANE)
    reply = pane.locator("textarea[name=text]")
    reply.fill("A reply in progress")
    pane.get_by_role("link", name="Edit contact").click()
    name = pane.locator("#contact-name")
    name.fill("Zed Renamed")
    pane.get_by_label("Attribute 1 name").fill("plan")
    pane.get_by_label("Attribute 1 value").fill("gold")
    pane.get_by_label("Assignee").select_option(label="Bob")
    pane.get_by_label("Add a tag").fill("vip")

    # The contact writes: the message appears; nothing the agent typed goes.
    services.message_receive(channel="sms", external_id="+3304", text="are you there?")
    expect(alice.locator("#thread")).to_contain_text("are you there?", timeout=10_000)
    expect(name).to_have_value("Zed Renamed")
    expect(pane.get_by_label("Attribute 1 value")).to_have_value("gold")
    expect(pane.get_by_label("Assignee")).to_have_value(str(bob.pk))
    expect(pane.get_by_label("Add a tag")).to_have_value("vip")
    expect(reply).to_have_value("A reply in progress")

    # Saved, it applies; the reply box follows the new name and keeps its text.
    pane.get_by_role("button", name="Save contact").click()
    expect(alice.locator("#pane-title")).to_have_text("Zed Renamed")
    contact = Contact.objects.get(external_id="+3304")
    assert contact.name == "Zed Renamed" and contact.attributes == {"plan": "gold"}
    expect(reply).to_have_attribute(
        "placeholder", "Reply to Zed Renamed… (type / for saved replies)"
    )
    expect(reply).to_have_value("A reply in progress")
    # The choices made before the save are still there, and apply when submitted.
    expect(pane.get_by_label("Add a tag")).to_have_value("vip")
    pane.get_by_role("button", name="Assign", exact=True).click()
    expect(alice.locator("#pane-notices")).to_contain_text("Assigned to Bob.")
    conversation.refresh_from_db()
    assert conversation.assignee == bob


def test_a_live_refresh_of_the_list_keeps_the_agents_place(live_server, browser):
    UserFactory(username="alice", first_name="Alice", last_name="")
    for n in range(110):
        inbound(f"Row Person {n:03}", f"+3310{n:03}")
    alice = log_in(browser, live_server.url, "alice")
    alice.set_viewport_size({"width": 1440, "height": 900})
    alice.goto(f"{live_server.url}/inbox/?view=all")
    rows = alice.locator(f"{LIST} .conv-row")
    expect(rows).to_have_count(50)
    alice.locator("#load-more button").click()
    expect(rows).to_have_count(100)
    rows.nth(90).scroll_into_view_if_needed()
    anchor = rows.nth(88)
    anchor.evaluate("(row) => row.scrollIntoView({block: 'start'})")
    anchor_id = anchor.get_attribute("data-id")
    place = """(id) => {
        const list = document.querySelector('#conversation-list');
        const row = list.querySelector(`.conv-row[data-id="${id}"]`);
        return [list.scrollTop, row.getBoundingClientRect().top - list.getBoundingClientRect().top];
    }"""
    top, offset = alice.evaluate(place, anchor_id)
    assert top > 1000

    # A contact writes (a row appears above): the same row stays where it was.
    inbound("Nina Newcomer", "+3399")
    refreshed(alice, LIST, "liveChanged")
    expect(alice.locator(LIST)).to_contain_text("Nina Newcomer")
    expect(rows).to_have_count(100)  # as many as were shown
    new_top, new_offset = alice.evaluate(place, anchor_id)
    assert abs(new_offset - offset) <= 2 and new_top > top

    # At the top, the list stays at the top: the newcomer shows there.
    alice.evaluate("document.querySelector('#conversation-list').scrollTop = 0")
    inbound("Otto Other", "+3398")
    refreshed(alice, LIST, "liveChanged")
    expect(rows.first).to_contain_text("Otto Other")
    assert alice.evaluate("document.querySelector('#conversation-list').scrollTop") == 0


def test_reading_a_mention_updates_the_mentions_count(live_server, browser):
    alice = UserFactory(username="alice", first_name="Alice", last_name="")
    bob = UserFactory(username="bob", first_name="Bob", last_name="")
    first = inbound("Mo First", "+3305")
    second = inbound("Lu Second", "+3306")
    services.note_add(conversation=first.pk, author=alice, text="@bob please look")
    services.note_add(conversation=second.pk, author=alice, text="@bob and this one")
    bobs = log_in(browser, live_server.url, "bob")
    count = bobs.locator('[data-view-count="mentions"]')
    expect(count).to_contain_text("2")

    # From the Mentions page: the conversation opens, the count drops by itself.
    bobs.goto(f"{live_server.url}/inbox/mentions/")
    bobs.locator(".mention-item").filter(has_text="please look").get_by_role("link").click()
    expect(bobs.locator("#thread .note")).to_contain_text("please look")
    expect(count).to_contain_text("1")
    # From the list: the same.
    bobs.locator(f'{LIST} .conv-row[data-id="{second.pk}"] .row-link').click()
    expect(bobs.locator("#thread .note")).to_contain_text("and this one")
    expect(count).to_contain_text("0")
    assert not Mention.objects.filter(agent=bob, read_at__isnull=True).exists()


def test_typing_presence_ends_when_the_reply_is_sent_or_the_conversation_closed(
    asgi_server, browser
):
    UserFactory(username="alice", first_name="Alice", last_name="")
    UserFactory(username="bob", first_name="Bob", last_name="")
    conversation = inbound("Tia Typing", "+3307", "hello?")
    url = f"{asgi_server}/inbox/c/{conversation.pk}/"
    alice = open_live(browser, asgi_server, "alice", url)
    bobs = open_live(browser, asgi_server, "bob", url)
    presence = alice.locator("#pane-presence")
    expect(presence).to_contain_text("Also viewing: Bob", timeout=5_000)
    box = bobs.locator("textarea[name=text]")

    # Sent: the reply appears, and "typing" goes with it (not seconds later).
    box.press_sequentially("On it", delay=30)
    expect(presence).to_contain_text("Bob is typing a reply", timeout=5_000)
    box.press("Control+Enter")
    expect(alice.locator("#thread")).to_contain_text("On it", timeout=5_000)
    expect(presence).to_have_text("Also viewing: Bob", timeout=2_000)

    # Closed while typing: nobody can type a reply there any more.
    box.press_sequentially("And one more", delay=30)
    expect(presence).to_contain_text("Bob is typing a reply", timeout=5_000)
    bobs.locator(PANE).get_by_role("button", name="Close").click()
    expect(alice.locator("#pane-status")).to_contain_text("Closed", timeout=5_000)
    expect(presence).not_to_contain_text("typing", timeout=2_000)


def test_the_s_shortcut_opens_the_snooze_menu(live_server, browser):
    UserFactory(username="alice", first_name="Alice", last_name="")
    conversation = inbound("Sol Snooze", "+3308")
    alice = log_in(browser, live_server.url, "alice")
    alice.goto(f"{live_server.url}/inbox/c/{conversation.pk}/")
    menu = alice.locator(f"{PANE} .snooze-menu")
    expect(menu).not_to_have_attribute("open", "")
    alice.keyboard.press("s")
    expect(menu).to_have_attribute("open", "")
    expect(menu.locator(".snooze-form button").first).to_be_focused()
    alice.keyboard.press("Enter")  # the first preset
    expect(alice.locator("#pane-status")).to_contain_text("Snoozed until")
