"""The mailbox in the admin: refused with a form error when it cannot work."""

import pytest

from connectors.mail.models import Mailbox
from connectors.models import Channel, ChannelKind

pytestmark = pytest.mark.django_db

FORM = {
    "address": "support@example.com",
    "from_name": "Parley",
    "password_env": "PARLEY_TEST_NO_SUCH_VARIABLE",
    "imap_host": "imap.example.com",
    "imap_port": "993",
    "imap_security": "ssl",
    "imap_user": "support@example.com",
    "imap_folder": "INBOX",
    "poll_seconds": "60",
    "smtp_host": "smtp.example.com",
    "smtp_port": "587",
    "smtp_security": "starttls",
    "smtp_user": "",
}


def test_a_mailbox_needs_its_password_variable_and_an_email_channel(staff_client, monkeypatch):
    web = Channel.objects.create(slug="site", kind=ChannelKind.WEB)
    mail = Channel.objects.create(slug="mail", kind=ChannelKind.EMAIL)
    response = staff_client.post("/admin/connectors/mailbox/add/", {**FORM, "channel": mail.pk})
    assert response.status_code == 200
    assert "The environment variable PARLEY_TEST_NO_SUCH_VARIABLE is not set." in (
        response.content.decode()
    )
    response = staff_client.post("/admin/connectors/mailbox/add/", {**FORM, "channel": web.pk})
    assert response.status_code == 200 and not Mailbox.objects.exists()

    monkeypatch.setenv("PARLEY_TEST_NO_SUCH_VARIABLE", "x")
    response = staff_client.post("/admin/connectors/mailbox/add/", {**FORM, "channel": mail.pk})
    assert response.status_code == 302
    assert Mailbox.objects.get().channel == mail


def test_a_mailbox_can_use_the_password_stored_encrypted_on_its_channel(staff_client):
    mail = Channel.objects.create(slug="mail", kind=ChannelKind.EMAIL)
    form = {**FORM, "password_env": "", "channel": mail.pk}
    response = staff_client.post("/admin/connectors/mailbox/add/", form)
    assert "store the password on the email channel" in response.content.decode()
    assert not Mailbox.objects.exists()

    mail.set_secret("password", "s3cret")
    mail.save()
    assert "s3cret" not in str(Channel.objects.get().secrets)  # stored sealed
    response = staff_client.post("/admin/connectors/mailbox/add/", form)
    assert response.status_code == 302
    assert Mailbox.objects.get().password == "s3cret"
