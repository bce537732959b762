"""A rebuild runs beside the writers: they neither wait for it nor get counted
twice or lost (real threads, each with its own connection and transactions)."""

import threading
import time

import pytest
from django.db import connection, transaction

from conversations import services
from reports import rollup
from reports.models import Setting
from tests.concurrency import run_together

from .test_reports import _rollups

pytestmark = pytest.mark.django_db(transaction=True)


def _rebuild_waiting() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND query LIKE '%%reports_setting%%'"
        )
        return cursor.fetchone()[0] > 0


def test_writers_do_not_wait_for_a_rebuild():
    Setting.objects.get_or_create(pk=1, defaults={"time_zone": "UTC"})
    services.message_receive(channel="web", external_id="a", text="before")
    release = threading.Event()

    def hold_setting():  # keeps the rebuild's transaction open after its deletes
        with transaction.atomic():
            Setting.objects.select_for_update().get(pk=1)
            release.wait(30)

    def write_meanwhile():
        for _ in range(200):
            if _rebuild_waiting():
                break
            time.sleep(0.05)
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = '5s'")
        try:
            services.message_receive(channel="web", external_id="a", text="during")
            services.message_receive(channel="whatsapp", external_id="b", text="new")
            rollup.compact()  # skipped while the rebuild holds the lock
        finally:
            release.set()

    def rebuild():
        time.sleep(0.3)
        return rollup.rebuild("UTC")

    _, errors = run_together([hold_setting, rebuild, write_meanwhile])
    assert errors == [None, None, None]
    incremental = _rollups()
    rollup.rebuild("UTC")
    assert _rollups() == incremental
