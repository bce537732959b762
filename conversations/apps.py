from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        from . import (
            signals,  # noqa: F401  (connects the guards)
            tasks,  # noqa: F401  (the settings' save starts the periodic task)
        )
