from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "connectors"
    verbose_name = "Connectors: web chat and outbound delivery"

    def ready(self) -> None:
        from conversations.models import VISITOR_CHANNEL_CHECKS

        from . import delivery  # connects the outbound delivery receiver

        VISITOR_CHANNEL_CHECKS.append(delivery.is_web_chat)
