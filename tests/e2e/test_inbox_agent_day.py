"""An agent's day in Chromium, against the live server: log in, open a New
conversation, reply, tag, close, archive, find it again under Archived, reload and
go back and forth with the filters kept, and close three at once."""

import re

import pytest
from playwright.sync_api import Page, expect

from conversations import services
from conversations.models import Conversation
from conversations.transitions import Status
from tests.factories import PASSWORD, ContactFactory, TagFactory, UserFactory, conversation_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def log_in(page: Page, live_server, username: str = "alice") -> None:
    page.goto(f"{live_server.url}/inbox/")
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/inbox/")
    # htmx takes the page's links and fields over when it has loaded; before, a click
    # or a search typed is a plain page load or nothing.
    page.wait_for_load_state("load")


def tab(page: Page, key: str):
    return page.locator(f"#status-tabs .tab-{key}")


def row(page: Page, name: str):
    return page.locator("#conversation-list .conv-row", has_text=name)


def count(page: Page, key: str):
    return page.locator(f'[data-tab-count="{key}"]')


@pytest.fixture
def team(db):
    alice = UserFactory(username="alice", first_name="Alice", last_name="Martin")
    UserFactory(username="bob", first_name="Bob", last_name="Nguyen")
    TagFactory(name="billing", colour="#b45309")
    people = {}
    for name, text in (
        ("Dana Scully", "My order never arrived."),
        ("Fox Mulder", "Where is my parcel?"),
        ("Walter Skinner", "Invoice has the wrong address."),
        ("Monica Reyes", "Can I change my delivery date?"),
    ):
        people[name] = conversation_in(Status.NEW, contact=ContactFactory(name=name), text=text)
    people["John Doggett"] = conversation_in(
        Status.IN_PROGRESS, contact=ContactFactory(name="John Doggett"), agent=alice
    )
    # The most recent activity: Dana's follow-up puts her on top.
    services.message_receive(
        channel="web", external_id=people["Dana Scully"].contact.external_id, text="Any news?"
    )
    return people


def test_an_agents_day(page: Page, live_server, team):
    dana = team["Dana Scully"]
    log_in(page, live_server)

    # The default view (#15): what needs her (open, hers or nobody's), most recent first.
    expect(page.locator(".tab-needs-me")).to_have_attribute("aria-current", "page")
    expect(page.locator("#conversation-list .conv-row")).to_have_count(5)
    expect(page.locator("#conversation-list .conv-row").first).to_contain_text("Dana Scully")
    expect(count(page, "new")).to_have_text("4")

    # The New tab.
    tab(page, "new").click()
    expect(page).to_have_url(f"{live_server.url}/inbox/?status=new")
    expect(tab(page, "new")).to_have_attribute("aria-current", "page")
    expect(tab(page, "all")).not_to_have_attribute("aria-current", "page")
    expect(page.locator("#conversation-list .conv-row")).to_have_count(4)

    # Open Dana's conversation.
    row(page, "Dana Scully").locator(".row-link").click()
    pane = page.locator("#conversation-pane")
    expect(pane.locator("#pane-title")).to_have_text("Dana Scully")
    expect(page).to_have_url(f"{live_server.url}/inbox/c/{dana.pk}/?status=new")
    expect(pane.locator(".pane-status")).to_contain_text("New")
    expect(pane.locator(".thread")).to_contain_text("Any news?")
    expect(row(page, "Dana Scully")).to_have_class(re.compile("is-open"))

    # Reply: it becomes In progress and leaves the New tab.
    pane.get_by_label("Reply to Dana Scully").fill(
        "Sorry about that! I'm checking with the carrier."
    )
    pane.get_by_role("button", name="Send reply").click()
    expect(pane.locator(".pane-status")).to_contain_text("In progress")
    expect(pane.locator(".msg-outbound").last).to_contain_text("checking with the carrier")
    expect(pane.get_by_label("Reply to Dana Scully")).to_have_value("")
    expect(row(page, "Dana Scully")).to_have_count(0)
    expect(count(page, "new")).to_have_text("3")
    expect(count(page, "in_progress")).to_have_text("2")
    assert Conversation.objects.get(pk=dana.pk).status == Status.IN_PROGRESS

    # Add and remove a tag.
    tags = pane.locator("#pane-tags")
    pane.get_by_label("Add a tag").fill("urgent")
    pane.get_by_label("Add a tag").press("Enter")
    expect(tags.locator(".tag", has_text="urgent")).to_be_visible()
    pane.get_by_role("button", name="Remove tag urgent").click()
    expect(tags.locator(".tag", has_text="urgent")).to_have_count(0)
    pane.get_by_label("Add a tag").fill("billing")
    pane.get_by_role("button", name="Add", exact=True).click()
    expect(tags.locator(".tag", has_text="billing")).to_be_visible()

    # Close: the tags lock, the buttons change, the reply box goes.
    pane.get_by_role("button", name="Close").click()
    expect(pane.locator(".pane-status")).to_contain_text("Closed")
    expect(pane.locator("#tags-locked")).to_have_text(
        re.compile("Tags are locked: the conversation is closed.")
    )
    expect(pane.get_by_role("button", name="Remove tag billing")).to_have_count(0)
    expect(pane.get_by_role("button", name="Close")).to_have_count(0)
    expect(pane.get_by_role("button", name="Archive")).to_be_visible()
    expect(pane.get_by_label("Reply to Dana Scully")).to_have_count(0)
    expect(pane).to_contain_text("This conversation is closed and read-only.")

    # Archive: it leaves the default view.
    pane.get_by_role("button", name="Archive").click()
    expect(pane.locator(".notice-success")).to_contain_text("Archived.")
    expect(pane.get_by_role("button", name="Unarchive")).to_be_visible()
    tab(page, "all").click()
    expect(page).to_have_url(f"{live_server.url}/inbox/?view=all")
    expect(page.locator("#conversation-list .conv-row")).to_have_count(4)
    expect(row(page, "Dana Scully")).to_have_count(0)
    expect(page.locator("#conversation-pane")).to_contain_text("No conversation selected")

    # Found again under Archived, a plain link.
    tab(page, "archived").click()
    expect(page).to_have_url(f"{live_server.url}/inbox/?archived=yes")
    expect(row(page, "Dana Scully")).to_be_visible()
    expect(row(page, "Dana Scully")).to_contain_text("Archived")
    expect(row(page, "Dana Scully")).to_contain_text("billing")

    # Reload, back and forward keep what the URL says.
    page.reload()
    expect(tab(page, "archived")).to_have_attribute("aria-current", "page")
    expect(page.locator("#conversation-list .conv-row")).to_have_count(1)
    page.go_back()
    expect(page).to_have_url(f"{live_server.url}/inbox/?view=all")
    expect(tab(page, "all")).to_have_attribute("aria-current", "page")
    expect(row(page, "Dana Scully")).to_have_count(0)
    page.go_forward()
    expect(page).to_have_url(f"{live_server.url}/inbox/?archived=yes")
    expect(tab(page, "archived")).to_have_attribute("aria-current", "page")
    expect(row(page, "Dana Scully")).to_be_visible()

    # A bulk close of three rows.
    tab(page, "new").click()
    expect(page.locator("#conversation-list .conv-row")).to_have_count(3)
    for name in ("Fox Mulder", "Walter Skinner", "Monica Reyes"):
        row(page, name).get_by_role("checkbox").check()
    expect(page.locator("#bulk-count")).to_have_text("3 selected")
    page.locator("#bulk-bar").get_by_role("button", name="Close").click()
    expect(page.locator("#bulk-result")).to_contain_text("3 closed.")
    expect(page.locator("#conversation-list .conv-row")).to_have_count(0)
    expect(count(page, "new")).to_have_text("0")
    expect(count(page, "closed")).to_have_text("3")
    assert Conversation.objects.filter(status=Status.CLOSED, archived_at__isnull=True).count() == 3


def test_a_refusal_shows_in_the_pane_with_the_true_state(page: Page, live_server, team):
    fox = team["Fox Mulder"]
    log_in(page, live_server)
    row(page, "Fox Mulder").locator(".row-link").click()
    pane = page.locator("#conversation-pane")
    expect(pane.locator("#pane-title")).to_have_text("Fox Mulder")

    # Someone else closes it a second before the agent answers.
    services.conversation_close(conversation=fox)
    pane.get_by_label("Reply to Fox Mulder").fill("Let me look into it.")
    pane.get_by_role("button", name="Send reply").click()

    expect(pane.locator(".notice-error")).to_contain_text("closed conversations are read-only")
    expect(pane.locator(".pane-status")).to_contain_text("Closed")
    expect(pane.get_by_role("button", name="Archive")).to_be_visible()
    assert not Conversation.objects.get(pk=fox.pk).messages.filter(direction="outbound").exists()

    # A conversation deleted from the back office while it is open: a clear toast.
    walter = team["Walter Skinner"]
    row(page, "Walter Skinner").locator(".row-link").click()
    expect(pane.locator("#pane-title")).to_have_text("Walter Skinner")
    walter.contact.delete()
    pane.get_by_role("button", name="Close").click()
    expect(page.locator("#toast")).to_have_text(re.compile("That conversation no longer exists"))


def test_filters_live_in_the_url(page: Page, live_server, team):
    log_in(page, live_server)

    page.get_by_label("Search contacts and messages").fill("parcel")
    expect(page).to_have_url(f"{live_server.url}/inbox/?q=parcel")
    expect(page.locator("#conversation-list .conv-row")).to_have_count(1)
    expect(row(page, "Fox Mulder")).to_be_visible()

    page.locator(".more-filters > summary").click()
    page.get_by_label("Sort by").select_option("waiting")
    expect(page).to_have_url(f"{live_server.url}/inbox/?q=parcel&sort=waiting")
    page.reload()
    expect(page.get_by_label("Search contacts and messages")).to_have_value("parcel")
    expect(page.get_by_label("Sort by")).to_have_value("waiting")
    expect(page.locator("#conversation-list .conv-row")).to_have_count(1)

    # A bulk action on everything the filter matches.
    page.locator("#scope-all").check()
    expect(page.locator("#bulk-count")).to_have_text("All 1 matching selected")
    page.locator("#bulk-assignee").select_option("me")
    page.locator("#bulk-bar").get_by_role("button", name="Assign").click()
    expect(page.locator("#bulk-result")).to_contain_text("1 assigned to Alice Martin.")
    expect(row(page, "Fox Mulder")).to_contain_text("Alice Martin")
    expect(page.locator("#scope-all")).to_be_checked()  # #15: the selection is kept

    # The tabs keep the other filters.
    tab(page, "in_progress").click()
    expect(page).to_have_url(f"{live_server.url}/inbox/?q=parcel&status=in_progress&sort=waiting")
    expect(page.locator("#conversation-list .conv-row")).to_have_count(0)
    # #15: the search finds Fox elsewhere (New), and says so with a link.
    expect(page.locator("#elsewhere")).to_contain_text("1 conversation elsewhere matches: 1 open.")

    # A bad link shows what is wrong instead of failing.
    page.goto(f"{live_server.url}/inbox/?archived=maybe")
    expect(page.locator(".list-errors")).to_contain_text("Archived: Select a valid choice.")


def test_the_inbox_follows_new_messages_and_keeps_the_draft(page: Page, live_server, team):
    dana = team["Dana Scully"].contact
    log_in(page, live_server)
    row(page, "Dana Scully").locator(".row-link").click()
    pane = page.locator("#conversation-pane")
    draft = pane.get_by_label("Reply to Dana Scully")
    draft.fill("Half-written answer")
    expect(count(page, "new")).to_have_text("4")

    services.message_receive(channel="web", external_id="newcomer-1", text="Hi!", name="Zed Zebra")
    services.message_receive(channel="web", external_id=dana.external_id, text="Hello again")

    # The heartbeat polls every 10 s; list, counts and pane follow without a reload.
    expect(row(page, "Zed Zebra")).to_be_visible(timeout=20_000)
    expect(page.locator("#conversation-list .conv-row").first).to_contain_text("Dana Scully")
    expect(count(page, "new")).to_have_text("5")
    expect(pane.locator(".thread")).to_contain_text("Hello again")
    # The agent's half-written reply survives the refresh.
    expect(pane.get_by_label("Reply to Dana Scully")).to_have_value("Half-written answer")
