"""#15 in Chromium: the new-broadcast form counts who the segment reaches and who
will be skipped, and updates the count as the segment and priority change; a plain
agent sees the button disabled with the reason."""

import pytest
from playwright.sync_api import expect

from conversations.transitions import Status
from flows.models import Broadcast
from tests.e2e.test_flows_start import log_in, survey_flow
from tests.factories import (
    ContactFactory,
    TagFactory,
    UserFactory,
    conversation_in,
    grant_broadcast,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_preview_follows_the_segment_and_priority_then_the_broadcast_starts(page, live_server):
    vip = TagFactory(name="vip")
    conversation_in(Status.NEW, tags=[vip])  # ongoing: skipped
    conversation_in(Status.CLOSED, tags=[vip])
    ContactFactory()
    ContactFactory(channel="sms", external_id="+3360001")
    flow = survey_flow()
    grant_broadcast(UserFactory(username="alice"))
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/flows/")

    preview = page.locator("#broadcast-preview")
    expect(preview).to_contain_text("Everyone: 4 contacts")
    expect(preview).to_contain_text("1 will be skipped as ongoing, so 3 get it.")

    page.get_by_label("Send to").select_option("tag")
    expect(preview).to_contain_text("Choose a tag.")
    page.locator("#id_tag").select_option("vip")
    expect(preview).to_contain_text("Tagged “vip”: 2 contacts")
    expect(preview).to_contain_text("1 will be skipped as ongoing, so 1 gets it.")
    page.get_by_label("Priority").check()
    expect(preview).to_contain_text("All of them get it")

    page.get_by_label("Send to").select_option("channel")
    page.locator("#id_channel").select_option("sms")
    expect(preview).to_contain_text("On channel sms: 1 contact.")

    page.locator("#id_flow").select_option(str(flow.pk))
    page.get_by_role("button", name="Start broadcast").click()
    expect(page.locator("#broadcast-title")).to_contain_text("Survey")
    broadcast = Broadcast.objects.get()
    assert (broadcast.segment, broadcast.segment_value, broadcast.total) == ("channel", "sms", 1)


def test_a_plain_agent_sees_why_the_button_is_disabled(page, live_server):
    UserFactory(username="bob")
    survey_flow()
    log_in(page, live_server, "bob")
    page.goto(f"{live_server.url}/flows/")
    button = page.get_by_role("button", name="Start broadcast")
    expect(button).to_be_disabled()
    expect(page.locator("#broadcast-not-permitted")).to_contain_text("an admin can grant it")
    expect(page.locator("#broadcast-preview")).to_contain_text("Everyone: 0 contacts")
