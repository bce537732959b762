"""The WhatsApp Cloud API channel, end to end through real HTTP: Meta's documented
webhook payloads posted to the app, and a local server standing in for the Graph API."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from connectors.models import Channel, ChannelKind, Delivery, DeliveryStatus
from connectors.whatsapp.models import Receipt, WhatsAppMessage, WhatsAppTemplate
from conversations import services
from conversations.models import Contact, Conversation, Message
from conversations.transitions import Status
from flows.broadcasts import broadcast_create, broadcast_execute
from flows.models import Flow, FlowStep, StepKind
from tests.connectors import whatsapp_fakes as meta

pytestmark = pytest.mark.django_db

IMMEDIATE = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
URL = "/webhooks/whatsapp/wa/"


@pytest.fixture
def graph():
    server = meta.FakeGraph()
    yield server
    server.stop()


@pytest.fixture
def channel(graph, settings, tmp_path):
    settings.TASKS = IMMEDIATE
    settings.MEDIA_ROOT = str(tmp_path)
    channel = Channel(
        slug="wa",
        kind=ChannelKind.WHATSAPP,
        phone_number_id=meta.PHONE_NUMBER_ID,
        business_account_id=meta.WABA_ID,
        api_base_url=graph.url,
    )
    channel.set_secret("app_secret", meta.APP_SECRET)
    channel.set_secret("access_token", meta.ACCESS_TOKEN)
    channel.set_secret("verify_token", meta.VERIFY_TOKEN)
    channel.save()
    return channel


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    """POST a payload to the webhook as Meta does (signed), running what it queues."""

    def post(payload: dict, *, signature: str | None = None):
        body = json.dumps(payload).encode()
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                URL,
                body,
                content_type="application/json",
                HTTP_X_HUB_SIGNATURE_256=signature or meta.signed(body),
            )

    return post


def _conversation() -> Conversation:
    return Conversation.objects.get(contact__channel="wa", contact__external_id=meta.CONTACT_WA_ID)


# --- verification and signatures --------------------------------------------------


def test_the_verification_handshake_echoes_the_challenge_only_with_the_right_token(client, channel):
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": ""}
    ok = client.get(URL, query | {"hub.verify_token": meta.VERIFY_TOKEN})
    assert ok.status_code == 200 and ok.content == b"1158201444"
    wrong = client.get(URL, query | {"hub.verify_token": "guess"})
    assert wrong.status_code == 403 and b"1158201444" not in wrong.content


def test_a_signed_text_creates_a_new_conversation_named_after_the_profile(post, channel):
    response = post(meta.text_message("wamid.IN1", "Does it come in another color?"))
    assert response.status_code == 200
    conversation = _conversation()
    assert conversation.status == Status.NEW
    assert conversation.contact.name == "Sheena Nelson"
    assert [m.text for m in conversation.messages.all()] == ["Does it come in another color?"]
    channel.refresh_from_db()
    assert channel.last_received_at is not None


def test_a_bad_signature_is_401_and_stores_nothing(post, channel):
    response = post(meta.text_message("wamid.IN1", "hi"), signature="sha256=" + "0" * 64)
    assert response.status_code == 401
    assert response.json()["error"] == "bad_signature"
    assert not Contact.objects.filter(channel="wa").exists()
    assert not channel.whatsapp_events.exists()
    # Signed with another secret: the same.
    body = json.dumps(meta.text_message("wamid.IN2", "hi")).encode()
    assert (
        post(meta.text_message("wamid.IN2", "hi"), signature=meta.signed(body, "x")).status_code
        == 401
    )
    assert not Message.objects.exists()


def test_the_same_webhook_delivered_twice_stores_one_message(post, channel):
    payload = meta.text_message("wamid.IN1", "Hello")
    assert post(payload).status_code == 200
    assert post(payload).status_code == 200
    assert Message.objects.filter(conversation__contact__channel="wa").count() == 1
    assert WhatsAppMessage.objects.filter(wamid="wamid.IN1").count() == 1
    assert channel.whatsapp_events.filter(processed_at__isnull=True).count() == 0


def test_interactive_location_and_media_become_messages(post, channel, graph, agent_client):
    post(
        meta.inbound(
            {
                "id": "wamid.B",
                "type": "interactive",
                "interactive": {
                    "type": "button_reply",
                    "button_reply": {"id": "5", "title": "5 - Excellent"},
                },
            }
        )
    )
    post(
        meta.inbound(
            {
                "id": "wamid.L",
                "type": "interactive",
                "interactive": {
                    "type": "list_reply",
                    "list_reply": {"id": "red", "title": "Red", "description": ""},
                },
            }
        )
    )
    post(
        meta.inbound(
            {
                "id": "wamid.P",
                "type": "location",
                "location": {
                    "latitude": 37.48,
                    "longitude": -122.14,
                    "name": "Philz Coffee",
                    "address": "101 Forest Ave, Palo Alto",
                },
            }
        )
    )
    post(
        meta.inbound(
            {
                "id": "wamid.I",
                "type": "image",
                "image": {
                    "caption": "The broken part",
                    "mime_type": "image/jpeg",
                    "sha256": "abc",
                    "id": "1003383421387256",
                },
            }
        )
    )
    texts = [m.text for m in _conversation().messages.order_by("id")]
    assert texts == [
        "5 - Excellent",
        "Red",
        "[Location] Philz Coffee, 101 Forest Ave, Palo Alto (37.48, -122.14)",
        "The broken part\n[Image]",
    ]
    # The media was fetched from the Graph API with the token and stored.
    fetched = [r for r in graph.requests if r["method"] == "GET"]
    assert [r["path"] for r in fetched] == ["/1003383421387256", "/files/1003383421387256"]
    assert all(r["authorization"] == f"Bearer {meta.ACCESS_TOKEN}" for r in fetched)
    image = WhatsAppMessage.objects.get(wamid="wamid.I")
    assert image.media_type == "image/jpeg" and image.media.read() == b"\xff\xd8\xffJPEG"
    # The thread shows it as an image preview, served to agents only.
    pane = agent_client.get(f"/inbox/c/{_conversation().pk}/").content.decode()
    assert f'<img src="/media/whatsapp/{image.pk}/"' in pane
    assert agent_client.get(f"/media/whatsapp/{image.pk}/").status_code == 200


def test_an_interactive_reply_answers_a_flow_ask_step(post, channel, agent):
    flow = Flow.objects.create(name="Colour")
    FlowStep.objects.create(
        flow=flow, position=1, kind=StepKind.ASK, text="Which?", attribute="colour"
    )
    post(meta.text_message("wamid.0", "hi"))
    from flows.engine import flow_start

    conversation = _conversation()
    services.conversation_close(conversation=conversation, actor=agent)
    flow_start(flow=flow, contact=conversation.contact, trigger="agent")
    post(
        meta.inbound(
            {
                "id": "wamid.R",
                "type": "interactive",
                "interactive": {"type": "list_reply", "list_reply": {"id": "red", "title": "Red"}},
            }
        )
    )
    assert Contact.objects.get(channel="wa").attributes["colour"] == "Red"


# --- outbound -------------------------------------------------------------------------


def test_an_agent_reply_reaches_the_graph_api_with_the_right_body_and_token(
    post, channel, graph, agent, django_capture_on_commit_callbacks
):
    post(meta.text_message("wamid.IN1", "Hello"))
    with django_capture_on_commit_callbacks(execute=True):
        message = services.conversation_reply(
            conversation=_conversation(), agent=agent, text="Hi Sheena!"
        )
    [sent] = graph.sends()
    assert sent["path"] == f"/{meta.PHONE_NUMBER_ID}/messages"
    assert sent["authorization"] == f"Bearer {meta.ACCESS_TOKEN}"
    assert sent["json"] == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": meta.CONTACT_WA_ID,
        "type": "text",
        "text": {"preview_url": False, "body": "Hi Sheena!"},
    }
    assert Delivery.objects.get(message=message).status == DeliveryStatus.DELIVERED
    assert WhatsAppMessage.objects.get(message=message).wamid == "wamid.OUT1"


def test_429_and_5xx_are_retried_and_a_final_error_shows_on_the_message(
    post, channel, graph, agent, agent_client, django_capture_on_commit_callbacks
):
    post(meta.text_message("wamid.IN1", "Hello"))
    graph.fail_next = [429, 503]
    with django_capture_on_commit_callbacks(execute=True):
        message = services.conversation_reply(conversation=_conversation(), agent=agent, text="Hi")
    delivery = Delivery.objects.get(message=message)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 3
    graph.fail_next = [400]  # not retried
    with django_capture_on_commit_callbacks(execute=True):
        refused = services.conversation_reply(
            conversation=_conversation(), agent=agent, text="Again"
        )
    delivery = Delivery.objects.get(message=refused)
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1
    assert "HTTP 400" in delivery.last_error
    pane = agent_client.get(f"/inbox/c/{_conversation().pk}/").content.decode()
    assert "Not sent: attempt 1: GraphError: HTTP 400: Too many requests" in pane


def test_status_webhooks_out_of_order_end_at_read(
    post, channel, graph, agent, agent_client, django_capture_on_commit_callbacks
):
    post(meta.text_message("wamid.IN1", "Hello"))
    with django_capture_on_commit_callbacks(execute=True):
        message = services.conversation_reply(conversation=_conversation(), agent=agent, text="Hi")
    for state in ("read", "sent", "delivered"):
        assert post(meta.status("wamid.OUT1", state)).status_code == 200
    assert WhatsAppMessage.objects.get(message=message).receipt == Receipt.READ
    pane = agent_client.get(f"/inbox/c/{_conversation().pk}/").content.decode()
    assert '<span aria-hidden="true">✓✓</span> Read' in pane


def test_a_receipt_before_the_send_answer_is_kept_and_a_failure_shows_its_error(post, channel):
    error = {
        "code": 131047,
        "title": "Re-engagement message",
        "error_data": {"details": "More than 24 hours have passed"},
    }
    post(meta.status("wamid.EARLY", "failed", errors=[error]))
    post(meta.status("wamid.EARLY", "delivered"))
    record = WhatsAppMessage.objects.get(wamid="wamid.EARLY")
    assert record.receipt == Receipt.FAILED
    assert record.error == "Re-engagement message — More than 24 hours have passed (code 131047)"


# --- the 24-hour window ----------------------------------------------------------------


def _age_inbound(hours: int = 25) -> None:
    Message.objects.filter(conversation__contact__channel="wa").update(
        created_at=timezone.now() - timedelta(hours=hours)
    )


def test_a_free_text_reply_after_24_hours_is_refused_before_anything_is_stored(
    post, channel, graph, agent, agent_client
):
    post(meta.text_message("wamid.IN1", "Hello"))
    _age_inbound()
    conversation = _conversation()
    before = Message.objects.count()
    reply = f"/inbox/c/{conversation.pk}/reply/"
    page = agent_client.post(reply, {"text": "Still there?"}, follow=True).content.decode()
    assert "has not written in the last 24 hours" in page
    assert "only accepts an approved template now" in page
    assert Message.objects.count() == before and not graph.sends()
    conversation.refresh_from_db()
    assert conversation.status == Status.NEW  # no status change either


@pytest.fixture
def template(channel):
    return WhatsAppTemplate.objects.create(
        channel=channel,
        name="order_update",
        language="en_US",
        body="Hello {{1}}, your order {{2}} is ready.",
    )


def test_outside_the_window_an_agent_sends_a_template_from_the_pane(
    post, channel, graph, template, agent_client, django_capture_on_commit_callbacks
):
    post(meta.text_message("wamid.IN1", "Hello"))
    _age_inbound()
    conversation = _conversation()
    pane = agent_client.get(f"/inbox/c/{conversation.pk}/").content.decode()
    assert '<option value="order_update">' in pane
    with django_capture_on_commit_callbacks(execute=True):
        agent_client.post(
            f"/inbox/c/{conversation.pk}/reply/",
            {"text": "", "template": "order_update", "template_params": "Sheena\nA-42"},
        )
    assert conversation.messages.last().text == "Hello Sheena, your order A-42 is ready."
    [sent] = graph.sends()
    assert sent["json"]["type"] == "template"
    assert sent["json"]["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Sheena"},
                    {"type": "text", "text": "A-42"},
                ],
            }
        ],
    }


def _flow(*, template: str = "") -> Flow:
    flow = Flow.objects.create(name="Promo")
    FlowStep.objects.create(
        flow=flow,
        position=1,
        kind=StepKind.SEND_MESSAGE,
        text="Hi {name}, our sale starts today!",
        template=template,
        template_params="{name}\nSALE" if template else "",
    )
    return flow


def test_a_broadcast_outside_the_window_without_a_template_is_refused_before_it_starts(
    post, channel, agent
):
    post(meta.text_message("wamid.IN1", "Hello"))
    services.conversation_close(conversation=_conversation(), actor=agent)
    _age_inbound()
    from conversations.exceptions import ParleyError

    with pytest.raises(ParleyError) as refused:
        broadcast_create(flow=_flow(), segment="channel", segment_value="wa", enqueue=False)
    assert refused.value.code == "outside_window"
    assert "1 contact(s) of this segment are on WhatsApp" in refused.value.detail
    assert "Name a template on the first message step of “Promo”" in refused.value.detail
    from flows.models import Broadcast

    assert not Broadcast.objects.exists()


def test_a_broadcast_outside_the_window_uses_its_template(
    post, channel, graph, template, agent, django_capture_on_commit_callbacks
):
    post(meta.text_message("wamid.IN1", "Hello"))
    services.conversation_close(conversation=_conversation(), actor=agent)
    _age_inbound()
    with django_capture_on_commit_callbacks(execute=True):
        broadcast = broadcast_create(
            flow=_flow(template="order_update"),
            segment="channel",
            segment_value="wa",
            enqueue=False,
        )
        broadcast = broadcast_execute(broadcast_id=broadcast.pk)
    assert (broadcast.sent, broadcast.failed) == (1, 0)
    [sent] = graph.sends()
    assert sent["authorization"] == f"Bearer {meta.ACCESS_TOKEN}"
    assert sent["json"]["type"] == "template"
    assert sent["json"]["template"]["name"] == "order_update"
    params = sent["json"]["template"]["components"][0]["parameters"]
    assert [p["text"] for p in params] == ["Sheena Nelson", "SALE"]
    stored = Message.objects.filter(sender_kind="broadcast").get()
    assert stored.text == "Hello Sheena Nelson, your order SALE is ready."


# --- channels as configuration ---------------------------------------------------------


def test_a_paused_channel_holds_outbound_and_keeps_inbound_until_resumed(
    post, channel, graph, agent, django_capture_on_commit_callbacks
):
    from connectors.delivery import channel_resume

    post(meta.text_message("wamid.IN1", "Hello"))
    Channel.objects.filter(pk=channel.pk).update(is_paused=True)
    with django_capture_on_commit_callbacks(execute=True):
        held = services.conversation_reply(conversation=_conversation(), agent=agent, text="Hi")
    assert Delivery.objects.get(message=held).status == DeliveryStatus.HELD
    assert post(meta.text_message("wamid.IN2", "Are you there?")).status_code == 200
    assert _conversation().messages.count() == 2  # kept, not processed yet
    assert not graph.sends()
    with django_capture_on_commit_callbacks(execute=True):
        assert channel_resume(channel=channel) == 1
    assert Delivery.objects.get(message=held).status == DeliveryStatus.DELIVERED
    assert [m.text for m in _conversation().messages.all()][-1] == "Are you there?"
    assert len(graph.sends()) == 1


def test_secrets_are_stored_encrypted_or_as_env_references(channel, monkeypatch):
    from connectors.secrets import SecretUnavailable

    stored = Channel.objects.get(pk=channel.pk)
    assert meta.ACCESS_TOKEN not in json.dumps(stored.secrets)
    assert stored.secrets["access_token"].startswith("fernet:")
    assert stored.secret("access_token") == meta.ACCESS_TOKEN
    stored.set_secret("access_token", "env:WA_TOKEN_TEST")
    monkeypatch.setenv("WA_TOKEN_TEST", "from-the-environment")
    assert stored.secret("access_token") == "from-the-environment"
    monkeypatch.delenv("WA_TOKEN_TEST")
    with pytest.raises(SecretUnavailable, match=r"\$WA_TOKEN_TEST, which is not set"):
        stored.secret("access_token")


def test_the_admin_never_shows_a_secret_and_blank_keeps_it(client, channel, staff):
    client.force_login(staff)
    url = f"/admin/connectors/channel/{channel.pk}/change/"
    page = client.get(url).content.decode()
    assert meta.ACCESS_TOKEN not in page and meta.APP_SECRET not in page
    assert "Access token (set)" in page and "Leave blank to keep" in page
    form = {
        "slug": "wa",
        "kind": "whatsapp",
        "is_active": "on",
        "phone_number_id": meta.PHONE_NUMBER_ID,
        "business_account_id": meta.WABA_ID,
        "api_base_url": channel.api_base_url,
        "access_token": "",
        "app_secret": "new-secret",
    }
    assert client.post(url, form).status_code == 302
    channel.refresh_from_db()
    assert channel.secret("access_token") == meta.ACCESS_TOKEN
    assert channel.secret("app_secret") == "new-secret"
    missing = client.post(url, form | {"phone_number_id": ""}).content.decode()
    assert "A WhatsApp channel needs its phone number id." in missing


def test_templates_sync_from_the_graph_api(channel, graph):
    from django.core.management import call_command

    graph.templates = [
        {
            "name": "order_update",
            "language": "en_US",
            "status": "APPROVED",
            "components": [{"type": "BODY", "text": "Hello {{1}}, order {{2}} is ready."}],
            "id": "1",
        }
    ]
    call_command("sync_whatsapp_templates", "wa")
    [synced] = WhatsAppTemplate.objects.filter(channel=channel)
    assert (synced.name, synced.body, synced.param_count) == (
        "order_update",
        "Hello {{1}}, order {{2}} is ready.",
        2,
    )
    [request] = graph.requests
    assert request["path"].startswith(f"/{meta.WABA_ID}/message_templates?fields=")
    assert request["authorization"] == f"Bearer {meta.ACCESS_TOKEN}"


def test_a_paused_web_chat_refuses_messages_with_a_sentence(client):
    Channel.objects.create(slug="site", kind=ChannelKind.WEB, is_paused=True)
    response = client.post("/chat/site/send/", {"text": "Hello?"})
    assert response.status_code == 503
    assert "This chat is paused for a moment" in response.content.decode()
    assert not Message.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_api_refuses_free_text_outside_the_window_with_409(live_server, settings, tmp_path):
    from connectors.tokens import token_create
    from tests.api.conftest import ApiClient
    from tests.factories import UserFactory

    settings.TASKS = IMMEDIATE
    Channel.objects.create(slug="wa", kind=ChannelKind.WHATSAPP, phone_number_id="1")
    inbound = services.message_receive(channel="wa", external_id=meta.CONTACT_WA_ID, text="Hi")
    Message.objects.update(created_at=timezone.now() - timedelta(hours=25))
    _, token = token_create(user=UserFactory(), name="test")
    api = ApiClient(live_server.url, token)
    answer = api.request(
        "POST", f"/conversations/{inbound.conversation.pk}/reply", {"text": "Still there?"}
    )
    assert answer.status == 409 and answer.error == "outside_window"
    assert "has not written in the last 24 hours" in answer.body["detail"]
    assert Message.objects.count() == 1
    WhatsAppTemplate.objects.create(
        channel=Channel.objects.get(slug="wa"), name="hello", body="Hello {{1}}!"
    )
    sent = api.request(
        "POST",
        f"/conversations/{inbound.conversation.pk}/reply",
        {"text": "-", "template": "hello", "template_params": ["Sheena"]},
    )
    assert sent.status == 201
    assert Message.objects.order_by("id").last().text == "Hello Sheena!"
