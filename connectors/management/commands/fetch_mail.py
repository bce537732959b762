import imaplib
import signal
import threading

from django.core.management.base import BaseCommand

from connectors.mail.fetch import connect, fetch_new, record_error, watch
from connectors.mail.models import Mailbox

RESCAN_SECONDS = 60
SETTINGS = ("imap_host", "imap_port", "imap_security", "imap_user", "imap_folder", "password_env")


def active_mailboxes():
    return Mailbox.objects.filter(channel__is_active=True, channel__kind="email")


class Command(BaseCommand):
    help = (
        "Fetch the email channels' mail over IMAP, for good: IDLE where the server has "
        "it, polling otherwise; mailboxes added or changed in the admin are picked up "
        "within a minute. --once fetches each mailbox once and stops."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Fetch once and stop.")
        parser.add_argument(
            "--configured",
            action="store_true",
            help="Only say (exit status 0 or 1) whether any active email channel has a mailbox.",
        )

    def handle(self, *args, once, configured, **options):
        if configured:
            raise SystemExit(0 if active_mailboxes().exists() else 1)
        if once:
            for mailbox in active_mailboxes():
                try:
                    imap = connect(mailbox)
                    try:
                        self.stdout.write(f"{mailbox}: {fetch_new(mailbox, imap)} new")
                    finally:
                        imap.shutdown()
                except (OSError, imaplib.IMAP4.error) as error:
                    record_error(mailbox, error)
                    self.stderr.write(f"{mailbox}: {error}")
            return
        self.watch_all()

    def watch_all(self) -> None:
        done = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: done.set())
        watchers: dict[int, tuple[tuple, threading.Event, threading.Thread]] = {}
        while not done.is_set():
            wanted = {m.pk: tuple(getattr(m, f) for f in SETTINGS) for m in active_mailboxes()}
            for pk, (config, stop, thread) in list(watchers.items()):
                if wanted.get(pk) != config or not thread.is_alive():
                    stop.set()
                    del watchers[pk]
            started = [pk for pk in wanted if pk not in watchers]
            for pk in started:
                stop = threading.Event()
                thread = threading.Thread(target=watch, args=(pk, stop), daemon=True)
                thread.start()
                watchers[pk] = (wanted[pk], stop, thread)
            if started:
                self.stdout.write(f"Watching {len(watchers)} mailbox(es).")
            done.wait(RESCAN_SECONDS)
        for _, stop, thread in watchers.values():
            stop.set()
            thread.join(timeout=5)
