"""Real mail servers for the email channel's tests: Debian's dovecot (IMAP) started by
the test run in a temporary directory, and aiosmtpd (SMTP) in the test process."""

import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from connectors.mail.models import Mailbox, Security
from connectors.models import Channel, ChannelKind
from tests.concurrency import free_port

DOVECOT = "/usr/sbin/dovecot"
PASSWORD = "mail-secret"
PASSWORD_ENV = "PARLEY_TEST_MAIL_PASSWORD"

DOVECOT_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={user} gid={group} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    user = {user}
  }}
  unix_listener stats-writer {{
    user = {user}
  }}
}}
"""


@dataclass
class Dovecot:
    port: int

    def account(self) -> str:
        """A fresh mailbox: every user name logs in with PASSWORD (a static passdb)."""
        return f"support-{uuid.uuid4().hex[:10]}"

    def connect(self, user: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        imap.login(user, PASSWORD)
        return imap

    def deliver(self, user: str, mail: EmailMessage | bytes) -> None:
        raw = mail if isinstance(mail, bytes) else mail.as_bytes()
        imap = self.connect(user)
        try:
            status, data = imap.append("INBOX", None, None, raw)
            assert status == "OK", data
        finally:
            imap.logout()


def _wait_listening(port: int, process: subprocess.Popen, log: Path) -> None:
    for _ in range(100):
        if process.poll() is not None:
            pytest.fail(f"dovecot stopped at start:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("dovecot did not listen within 5 s")


@pytest.fixture(scope="session")
def dovecot():
    if not os.path.exists(DOVECOT):
        pytest.fail(
            "The email tests need Debian's dovecot: run 'apt-get install dovecot-imapd' "
            "(bin/test installs it when it runs as root)."
        )
    # Not under pytest's own temporary folder: only its owner may enter that.
    root = Path(tempfile.mkdtemp(prefix="parley-dovecot-"))
    # Unprivileged: as root, everything runs as nobody; otherwise as ourselves.
    uid = os.getuid() or pwd.getpwnam("nobody").pw_uid
    user, gid = pwd.getpwuid(uid).pw_name, pwd.getpwuid(uid).pw_gid
    group = grp.getgrgid(gid).gr_name
    os.chown(root, uid, -1)
    port = free_port()
    config = root / "dovecot.conf"
    config.write_text(
        DOVECOT_CONF.format(root=root, user=user, group=group, password=PASSWORD, port=port)
    )
    log = root / "dovecot.log"
    process = subprocess.Popen(  # noqa: S603
        [DOVECOT, "-F", "-c", str(config)],
        user=uid if os.getuid() == 0 else None,
        group=gid if os.getuid() == 0 else None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_listening(port, process, log)
        yield Dovecot(port=port)
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class SmtpSink:
    port: int
    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == PASSWORD.encode()
        self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.received.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server():
    sink = SmtpSink(port=free_port())
    controller = Controller(
        sink,
        hostname="127.0.0.1",
        port=sink.port,
        authenticator=sink.authenticate,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture
def mail_password(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


@pytest.fixture
def mailbox(db, dovecot, smtp_server, mail_password) -> Mailbox:
    """An email channel whose mailbox is a fresh dovecot account, sending through the
    SMTP sink."""
    user = dovecot.account()
    channel = Channel.objects.create(slug="mail", kind=ChannelKind.EMAIL)
    return Mailbox.objects.create(
        channel=channel,
        address=f"{user}@example.com",
        imap_host="127.0.0.1",
        imap_port=dovecot.port,
        imap_security=Security.NONE,
        imap_user=user,
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        smtp_security=Security.NONE,
        password_env=PASSWORD_ENV,
    )


@pytest.fixture(autouse=True)
def _attachments_in_a_temporary_folder(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
