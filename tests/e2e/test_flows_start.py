"""In Chromium: an agent starts a flow on an ongoing conversation, is refused without
priority, then succeeds with it and sees the status badge become "In a flow"; a
broadcast page polls its progress to the final counts."""

import re

import pytest
from playwright.sync_api import expect

from conversations.transitions import Status
from flows import broadcasts
from flows.models import Flow, FlowStep, Segment, StepKind
from tests.factories import PASSWORD, ContactFactory, UserFactory, conversation_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server, username):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/inbox/.*"))


def survey_flow() -> Flow:
    flow = Flow.objects.create(name="Survey")
    FlowStep.objects.create(
        flow=flow, position=1, kind=StepKind.ASK, text="Rate us 1-5", attribute="rating"
    )
    return flow


def test_start_flow_refused_then_accepted_with_priority(page, live_server):
    UserFactory(username="alice")
    flow = survey_flow()
    conversation = conversation_in(Status.NEW)
    log_in(page, live_server, "alice")

    page.goto(f"{live_server.url}/flows/start/{conversation.pk}/")
    badge = page.locator("#status-badge")
    expect(badge).to_have_text("New")
    page.select_option("select[name=flow]", str(flow.pk))
    page.get_by_role("button", name="Start flow").click()

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(
        "only interrupt an ongoing conversation when started with priority"
    )
    expect(badge).to_have_text("New")

    page.get_by_role("switch").check()
    page.get_by_role("button", name="Start flow").click()

    expect(page.get_by_role("status").filter(has_text="Flow “Survey” started")).to_be_visible()
    expect(page.locator("#status-badge")).to_have_text("In a flow")
    expect(page.locator("#conversation-status")).to_contain_text("running flow “Survey”")
    conversation.refresh_from_db()
    assert conversation.status == Status.IN_FLOW


def test_broadcast_page_shows_progress_then_counts(page, live_server):
    UserFactory(username="alice")
    flow = survey_flow()
    conversation_in(Status.NEW)
    ContactFactory()
    ContactFactory()
    log_in(page, live_server, "alice")
    broadcast = broadcasts.broadcast_create(flow=flow, segment=Segment.ALL, enqueue=False)

    page.goto(f"{live_server.url}/flows/broadcasts/{broadcast.pk}/")
    expect(page.locator("#broadcast-state")).to_have_text("Queued")

    broadcasts.broadcast_execute(broadcast_id=broadcast.pk)  # the worker's work

    expect(page.locator("#broadcast-state")).to_have_text("Done", timeout=5000)
    expect(page.locator("#count-sent")).to_have_text("2")
    expect(page.locator("#count-skipped")).to_have_text("1")
    expect(page.locator("#count-failed")).to_have_text("0")
    expect(page.locator("#broadcast-bar")).to_have_attribute("value", "100")


def test_start_flow_from_the_conversation_pane(page, live_server):
    """The inbox pane's action area includes the flows form: refused without
    priority, accepted with it, and the pane's badge becomes In a flow."""
    UserFactory(username="alice")
    flow = survey_flow()
    conversation = conversation_in(Status.IN_PROGRESS, contact=ContactFactory(name="Dana Scully"))
    log_in(page, live_server, "alice")

    page.goto(f"{live_server.url}/inbox/c/{conversation.pk}/")
    pane = page.locator("#conversation-pane")
    expect(pane.locator("#pane-status")).to_contain_text("In progress")
    form = pane.locator(f"#start-flow-{conversation.pk}")
    form.locator("select[name=flow]").select_option(str(flow.pk))
    form.get_by_role("button", name="Start flow").click()

    # The pane refreshes itself (conversationChanged) and shows the refusal.
    expect(page.locator("#pane-notices")).to_contain_text("started with priority")
    expect(pane.locator("#pane-status")).to_contain_text("In progress")

    pane.locator(f"#start-flow-{conversation.pk}").get_by_role("switch").check()
    pane.locator(f"#start-flow-{conversation.pk}").get_by_role("button", name="Start flow").click()

    expect(page.locator("#pane-notices")).to_contain_text("Flow “Survey” started")
    expect(page.locator("#conversation-pane #pane-status")).to_contain_text("In a flow")
    expect(page.locator("#conversation-pane")).to_contain_text("Rate us 1-5")
    conversation.refresh_from_db()
    assert conversation.status == Status.IN_FLOW
