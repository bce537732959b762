import time

from django.core.management.base import BaseCommand

from conversations.inbox_settings import business_timezone
from reports import rollup


class Command(BaseCommand):
    help = "Recompute the reports' rollups from the facts, in the business's time zone."

    def handle(self, *args, **options):
        started = time.perf_counter()
        rows = rollup.rebuild(str(business_timezone()))
        elapsed = time.perf_counter() - started
        self.stdout.write(f"{rows:,} rollup rows rebuilt in {elapsed:.1f} s")
