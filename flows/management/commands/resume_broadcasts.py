"""Queue again every broadcast that is not done (after a worker died half-way)."""

from django.core.management.base import BaseCommand

from flows import broadcasts
from flows.models import Broadcast, BroadcastState


class Command(BaseCommand):
    help = "Queue again the broadcasts that are queued or running (after a worker died)."

    def handle(self, *args, **options):
        ids = list(
            Broadcast.objects.filter(
                state__in=[BroadcastState.QUEUED, BroadcastState.RUNNING]
            ).values_list("pk", flat=True)
        )
        resumed = [pk for pk in ids if broadcasts.broadcast_resume(broadcast_id=pk)]
        self.stdout.write(f"Queued again: {len(resumed)} broadcast(s) {resumed}.")
