from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from connectors.tokens import token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print it (it is shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for.")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if not user.is_active:
            raise CommandError(f"The user {username!r} is inactive.")
        _, secret = token_create(user=user, name=name or "created with create_api_token")
        self.stdout.write(secret)
