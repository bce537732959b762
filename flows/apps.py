from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows and broadcasts"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  (connects to conversations.hooks)
