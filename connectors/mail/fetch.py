"""Fetching mail over IMAP: what arrived since the last UID stored (and the same
UIDVALIDITY), one transaction per message; then IDLE until the server says
something changed, or a pause where the server has no IDLE. ``fetch_mail`` runs one
watcher thread per mailbox (``watch``)."""

import imaplib
import logging
import select
import ssl
import threading

from django.db import DatabaseError, connection
from django.utils import timezone

from .inbound import store_or_skip
from .models import Mailbox, Security

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 30
IDLE_SECONDS = 25 * 60  # below the 29 minutes after which servers may drop an IDLE
MAX_BACKOFF_SECONDS = 300


def connect(mailbox: Mailbox) -> imaplib.IMAP4:
    context = ssl.create_default_context()
    if mailbox.imap_security == Security.SSL:
        imap = imaplib.IMAP4_SSL(
            mailbox.imap_host, mailbox.imap_port, ssl_context=context, timeout=TIMEOUT_SECONDS
        )
    else:
        imap = imaplib.IMAP4(mailbox.imap_host, mailbox.imap_port, timeout=TIMEOUT_SECONDS)
        if mailbox.imap_security == Security.STARTTLS:
            imap.starttls(ssl_context=context)
    try:
        imap.login(mailbox.imap_user, mailbox.password)
        status, data = imap.select(f'"{mailbox.imap_folder}"', readonly=True)
        if status != "OK":
            raise imaplib.IMAP4.error(f"cannot open the folder {mailbox.imap_folder}: {data}")
    except BaseException:
        imap.shutdown()
        raise
    return imap


def record_error(mailbox: Mailbox, error: BaseException | str) -> None:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    logger.warning("Mailbox %s: %s", mailbox.address, text)
    try:
        Mailbox.objects.filter(pk=mailbox.pk).update(
            last_error=text[:1000], last_error_at=timezone.now()
        )
    except DatabaseError:  # the database is away too: the log has it
        connection.close()


def fetch_new(mailbox: Mailbox, imap: imaplib.IMAP4) -> int:
    """Store the mail that arrived since the last fetch; how many UIDs were new."""
    _, [uidvalidity] = imap.response("UIDVALIDITY")  # sent once, after SELECT
    mailbox.refresh_from_db(fields=["uidvalidity", "last_uid"])
    if uidvalidity is not None and mailbox.uidvalidity != int(uidvalidity):
        # A new series of UIDs (a new mailbox, or the folder was rebuilt): from its
        # start; Message-IDs already stored are skipped.
        mailbox.uidvalidity, mailbox.last_uid = int(uidvalidity), 0
        Mailbox.objects.filter(pk=mailbox.pk).update(uidvalidity=int(uidvalidity), last_uid=0)
    status, data = imap.uid("SEARCH", None, f"UID {mailbox.last_uid + 1}:*")
    if status != "OK":
        raise imaplib.IMAP4.error(f"UID SEARCH failed: {data}")
    # "n:*" always matches the newest message, even one below n.
    uids = sorted(uid for uid in map(int, data[0].split()) if uid > mailbox.last_uid)
    for uid in uids:
        status, data = imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
        raw = next((part[1] for part in data if isinstance(part, tuple)), None)
        if status != "OK" or raw is None:  # expunged meanwhile
            continue
        try:
            outcome = store_or_skip(mailbox, uid, raw)
        except DatabaseError:
            raise
        except Exception as error:  # a mail we cannot read is skipped, and said so
            Mailbox.objects.filter(pk=mailbox.pk, last_uid__lt=uid).update(last_uid=uid)
            record_error(mailbox, f"UID {uid} skipped: {type(error).__name__}: {error}")
            continue
        logger.info("Mailbox %s: UID %s: %s", mailbox.address, uid, outcome)
    Mailbox.objects.filter(pk=mailbox.pk).update(last_checked_at=timezone.now())
    return len(uids)


def idle(imap: imaplib.IMAP4, seconds: float, stop: threading.Event) -> None:
    """IDLE (RFC 2177) until the server says something, ``seconds`` pass or ``stop``
    is set. Whatever the server said, the caller fetches next."""
    tag = imap._new_tag()
    imap.send(tag + b" IDLE\r\n")
    answer = imap.readline()
    if not answer.startswith(b"+"):
        raise imaplib.IMAP4.error(f"IDLE refused: {answer!r}")
    deadline = timezone.now().timestamp() + seconds
    while not stop.is_set() and timezone.now().timestamp() < deadline:
        if select.select([imap.sock], [], [], 1)[0]:
            break
    imap.send(b"DONE\r\n")
    while not (line := imap.readline()).startswith(tag):
        if not line:
            raise imaplib.IMAP4.abort("the server closed the connection during IDLE")


def watch(mailbox_pk: int, stop: threading.Event) -> None:
    """Keep one mailbox fetched until ``stop`` is set; every failure is recorded on
    the mailbox (its health in the admin) and retried with a growing pause."""
    failures = 0
    try:
        while not stop.is_set():
            mailbox = Mailbox.objects.filter(pk=mailbox_pk).first()
            if mailbox is None:
                return
            try:
                imap = connect(mailbox)
                try:
                    failures = 0
                    while not stop.is_set():
                        fetch_new(mailbox, imap)
                        if "IDLE" in imap.capabilities:
                            idle(imap, IDLE_SECONDS, stop)
                        else:
                            stop.wait(mailbox.poll_seconds)
                finally:
                    imap.shutdown()
            except Exception as error:  # any failure: recorded, and tried again
                failures += 1
                record_error(mailbox, error)
                connection.close()  # a broken database connection is opened again
                stop.wait(min(2**failures, MAX_BACKOFF_SECONDS))
    finally:
        connection.close()
