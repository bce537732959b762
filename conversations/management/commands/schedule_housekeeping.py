from django.core.management.base import BaseCommand

from conversations.tasks import schedule_housekeeping


class Command(BaseCommand):
    help = "Start the periodic auto-close and survey-window task (no-op when it is queued)."

    def handle(self, *args, **options):
        queued = schedule_housekeeping(delay=0)
        self.stdout.write("Housekeeping queued." if queued else "Housekeeping already queued.")
