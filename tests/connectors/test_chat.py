import pytest
from django.test import Client

from connectors.models import Channel, ChannelKind
from conversations import services
from conversations.models import Contact, Conversation, Message
from conversations.transitions import Status

pytestmark = pytest.mark.django_db

FETCH = {"X-Requested-With": "fetch"}


def _visitor(client) -> Contact:
    return Contact.objects.get(channel="web")


def test_the_chat_page_gives_the_visitor_a_signed_cookie(client):
    response = client.get("/chat/web/")
    assert response.status_code == 200
    assert "Chat with us" in response.content.decode()
    cookie = response.cookies["parley_chat_web"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert ":" in cookie.value  # signed, so a visitor cannot pose as another contact
    assert not Contact.objects.exists()  # nobody is created before writing


def test_writing_creates_the_contact_and_a_new_conversation(client):
    client.get("/chat/web/")
    response = client.post("/chat/web/send/", {"text": "Hello there", "name": "Ann"})
    assert response.status_code == 302
    assert response["Location"] == "/chat/web/"
    contact = _visitor(client)
    assert contact.name == "Ann"
    conversation = contact.conversations.get()
    assert conversation.status == Status.NEW
    assert conversation.messages.get().text == "Hello there"
    # The same visitor keeps writing into the same conversation.
    client.post("/chat/web/send/", {"text": "Anyone?"}, headers=FETCH)
    assert Contact.objects.count() == 1
    assert conversation.messages.count() == 2


def test_the_thread_shows_replies_escaped(client, agent):
    client.get("/chat/web/")
    client.post("/chat/web/send/", {"text": "Hi <b>bold</b>"})
    conversation = Conversation.objects.get()
    services.conversation_reply(conversation=conversation, agent=agent, text="<script>x()</script>")
    thread = client.get("/chat/web/thread/").content.decode()
    assert "&lt;script&gt;x()&lt;/script&gt;" in thread
    assert "<script>x()" not in thread
    assert "Hi &lt;b&gt;bold&lt;/b&gt;" in thread
    assert "Alice" in thread  # the agent's first name
    assert "<html" not in thread  # the fragment only


def test_another_visitor_sees_only_their_own_thread(client, agent):
    client.get("/chat/web/")
    client.post("/chat/web/send/", {"text": "secret of visitor one"})
    stranger = Client()
    stranger.get("/chat/web/")
    assert "secret of visitor one" not in stranger.get("/chat/web/thread/").content.decode()


def test_a_forged_cookie_is_ignored(client):
    contact = services.contact_create(channel="web", external_id="known-visitor")
    services.message_receive(channel="web", external_id="known-visitor", text="private")
    client.cookies["parley_chat_web"] = "known-visitor"
    assert "private" not in client.get("/chat/web/thread/").content.decode()
    client.post("/chat/web/send/", {"text": "hello"})
    assert contact.conversations.get().messages.count() == 1
    assert Contact.objects.count() == 2


@pytest.mark.parametrize("text", ["", "   ", "x" * 10_001])
def test_an_empty_or_too_long_message_is_refused_and_nothing_is_written(client, text):
    client.get("/chat/web/")
    page = client.post("/chat/web/send/", {"text": text})
    fragment = client.post("/chat/web/send/", {"text": text}, headers=FETCH)
    assert page.status_code == fragment.status_code == 422
    assert "Message" in fragment.content.decode()
    assert 'class="error"' in page.content.decode()
    assert not Contact.objects.exists() and not Message.objects.exists()


def test_the_chat_needs_the_csrf_token():
    client = Client(enforce_csrf_checks=True)
    client.get("/chat/web/")
    response = client.post("/chat/web/send/", {"text": "no token"})
    assert response.status_code == 403
    assert not Message.objects.exists()


def test_only_web_chat_channels_have_a_chat_page(client):
    Channel.objects.create(slug="hooks", kind=ChannelKind.WEBHOOK, webhook_url="http://x.test/")
    Channel.objects.create(slug="kiosk", kind=ChannelKind.WEB)
    Channel.objects.create(slug="old", kind=ChannelKind.WEB, is_active=False)
    assert client.get("/chat/kiosk/").status_code == 200
    assert client.get("/chat/hooks/").status_code == 404
    assert client.get("/chat/old/").status_code == 404
    assert client.get("/chat/whatsapp/").status_code == 404
    assert client.post("/chat/hooks/send/", {"text": "hi"}).status_code == 404
    assert not Message.objects.exists()


def test_the_chat_uses_get_and_post_only_where_meant(client):
    assert client.post("/chat/web/").status_code == 405
    assert client.get("/chat/web/send/").status_code == 405


def test_a_flow_answers_in_the_chat_when_the_contact_writes_its_keyword(client):
    from flows.models import Flow, FlowStep, StepKind

    flow = Flow.objects.create(name="Opening hours", trigger_keyword="hours")
    FlowStep.objects.create(
        flow=flow, position=10, kind=StepKind.SEND_MESSAGE, text="We open at 9, {name}."
    )
    FlowStep.objects.create(flow=flow, position=20, kind=StepKind.HAND_OFF)
    client.get("/chat/web/")
    thread = client.post("/chat/web/send/", {"text": "hours", "name": "Ann"}, headers=FETCH)
    html = thread.content.decode()
    assert "We open at 9, Ann." in html
    assert html.index("hours") < html.index("We open at 9")
    assert "Parley" in html  # automated messages are signed by the service, not an agent
    assert _visitor(client).conversations.get().status == Status.NEW  # handed off


def test_a_new_conversation_after_close_is_marked_in_the_thread(client, agent):
    client.get("/chat/web/")
    client.post("/chat/web/send/", {"text": "first question"})
    services.conversation_close(conversation=Conversation.objects.get(), actor=agent)
    html = client.post("/chat/web/send/", {"text": "second question"}, headers=FETCH)
    html = html.content.decode()
    assert html.count("New conversation") == 1
    assert html.index("first question") < html.index("New conversation")
    assert html.index("New conversation") < html.index("second question")
    assert Conversation.objects.count() == 2
