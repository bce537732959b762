from django.core.management.base import BaseCommand, CommandError

from connectors.models import Channel, ChannelKind
from connectors.whatsapp.graph import GraphError
from connectors.whatsapp.templates import templates_sync
from conversations.exceptions import ParleyError


class Command(BaseCommand):
    help = "Sync the approved message templates of WhatsApp channels from the Graph API."

    def add_arguments(self, parser):
        parser.add_argument("channels", nargs="*", help="Channel slugs (default: every one).")

    def handle(self, *args, channels, **options):
        queryset = Channel.objects.filter(kind=ChannelKind.WHATSAPP, is_active=True)
        if channels:
            queryset = queryset.filter(slug__in=channels)
        for channel in queryset:
            try:
                count = templates_sync(channel=channel)
            except (GraphError, ParleyError) as exc:
                raise CommandError(f"{channel.slug}: {exc}") from None
            self.stdout.write(f"{channel.slug}: {count} template(s)")
