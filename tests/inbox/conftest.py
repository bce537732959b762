from contextlib import contextmanager
from datetime import datetime
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone

from conversations import services
from conversations.models import Conversation
from inbox import choices


def hx(target: str | None = None, trigger: str | None = None, **extra) -> dict:
    """The headers htmx sends."""
    headers = {"HX-Request": "true", "HX-Current-URL": "http://testserver/inbox/"}
    if target:
        headers["HX-Target"] = target
    if trigger:
        headers["HX-Trigger"] = trigger
    headers.update(extra)
    return headers


@contextmanager
def clock(moment: datetime):
    """Run services as if it were ``moment`` (they read ``timezone.now``)."""
    with mock.patch("django.utils.timezone.now", return_value=moment):
        yield


def aware(*args) -> datetime:
    return timezone.make_aware(datetime(*args))


def refresh(conversation: Conversation) -> Conversation:
    return Conversation.objects.get(pk=conversation.pk)


def receive(conversation: Conversation, text: str = "Hello?"):
    contact = conversation.contact
    return services.message_receive(
        channel=contact.channel, external_id=contact.external_id, text=text
    )


@pytest.fixture(autouse=True)
def _fresh_choices():
    """The dropdown choices are remembered per process (inbox.choices); a test's
    rows roll back without a signal, so the memory must not outlive the test."""
    choices.forget()
    yield
    choices.forget()


@pytest.fixture
def csrf_client(agent):
    """A client that enforces CSRF like a browser does, logged in as the agent."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent)
    return client


def csrf_token(client: Client, url: str = "/inbox/") -> str:
    """The token a page hands to its forms (and to htmx through hx-headers)."""
    response = client.get(url)
    assert response.status_code == 200
    return str(response.context["csrf_token"])


def ids_in(response) -> list[int]:
    """Conversation ids of the rows in a list response, in order."""
    import re

    return [int(pk) for pk in re.findall(r'class="conv-row" data-id="(\d+)"', response.text)]
