from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "connectors"
    verbose_name = "Connectors: web chat and outbound delivery"

    def ready(self) -> None:
        from conversations.models import VISITOR_CHANNEL_CHECKS

        from . import delivery  # connects the outbound delivery receiver
        from .mail import display  # noqa: F401  (the email channel's receivers)
        from .mail import outbound as mail_outbound  # noqa: F401
        from .whatsapp import outbound as whatsapp_outbound  # noqa: F401  (the 24-hour window)

        VISITOR_CHANNEL_CHECKS.append(delivery.is_web_chat)
