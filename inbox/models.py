"""The inbox's own table: the agents' sessions (``inbox.sessions``)."""

from django.conf import settings
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models


class AgentSession(AbstractBaseSession):
    """Django's session row and, as a column, the user it is logged in as: every
    page reads the session and its user in one query (``inbox.sessions``)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )

    @classmethod
    def get_session_store_class(cls):
        from .sessions import SessionStore

        return SessionStore
