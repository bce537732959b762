"""Sessions that read their user with them (``SESSION_ENGINE``), and the
authentication middleware that uses it.

Django reads the session (one query) and then its user (a second), on every page;
both are small, but each costs its round trip and the ORM's compiling, ~1.4 ms of
CPU of a 9 ms page. Here the session row carries the user's id as a column
(``inbox.models.AgentSession``), one hand-written statement reads both, and
``get_user`` takes that user when everything Django checks holds: the same id, the
ModelBackend that logged it in, an active user and the session's hash under the
current secret. Anything else (an old secret, a changed password, another backend)
takes Django's own ``auth.get_user``, unchanged.
"""

import functools
from types import SimpleNamespace

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth import middleware as auth_middleware
from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.db import connection
from django.dispatch import receiver
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.functional import SimpleLazyObject

from conversations import hooks, housekeeping

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _user_id(data: dict) -> int | None:
    value = data.get(SESSION_KEY)
    return int(value) if isinstance(value, str | int) and str(value).isdigit() else None


class SessionStore(DBStore):
    # The user the session's row names, read with it (None: none, or not loaded).
    user = None

    @classmethod
    def get_model_class(cls):
        from .models import AgentSession

        return AgentSession

    def create_model_instance(self, data):
        session = super().create_model_instance(data)
        session.user_id = _user_id(data)
        return session

    def _get_session_from_db(self):
        sql, attnames = _session_query(self.model)
        with connection.cursor() as cursor:
            cursor.execute(sql, [self.session_key, timezone.now()])
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        if row[1] is not None:
            self.user = get_user_model().from_db(connection.alias, attnames, row[2:])
        return SimpleNamespace(session_data=row[0])


@functools.cache
def _session_query(model) -> tuple[str, list[str]]:
    """The statement reading a session and its user, and the user's field names in
    the order it reads them (written once per process)."""
    User = get_user_model()
    fields = User._meta.concrete_fields
    columns = ", ".join(f'u."{field.column}"' for field in fields)
    sql = f"""SELECT s.session_data, s.user_id, {columns}
        FROM {model._meta.db_table} s
        LEFT JOIN {User._meta.db_table} u ON u.{User._meta.pk.column} = s.user_id
        WHERE s.session_key = %s AND s.expire_date > %s"""  # noqa: S608 - names
    return sql, [field.attname for field in fields]


def get_user(request):
    """``django.contrib.auth.get_user``, with the user the session read."""
    session = request.session
    try:
        user_id = session[SESSION_KEY]  # loads the session, and its user
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        return auth.get_user(request)  # anonymous, as Django says
    user = getattr(session, "user", None)
    if (
        user is not None
        and str(user.pk) == str(user_id)
        and backend_path == MODEL_BACKEND
        and backend_path in settings.AUTHENTICATION_BACKENDS
        and user.is_active
        and constant_time_compare(session.get(HASH_SESSION_KEY) or "", user.get_session_auth_hash())
    ):
        return user
    return auth.get_user(request)


class AuthenticationMiddleware(auth_middleware.AuthenticationMiddleware):
    def process_request(self, request):
        super().process_request(request)
        request.user = SimpleLazyObject(lambda: _cached_user(request))


def _cached_user(request):
    if not hasattr(request, "_cached_user"):
        request._cached_user = get_user(request)
    return request._cached_user


@receiver(hooks.housekeeping_due, dispatch_uid="inbox.delete_expired_sessions")
def _housekeeping(sender, **kwargs) -> dict:
    """Expired sessions are deleted (Django leaves that to ``clearsessions``, which
    nothing would run)."""
    table = SessionStore.get_model_class()._meta.db_table
    expired = housekeeping.delete_older(table, "expire_date", timezone.now(), key="session_key")
    return {"sessions_expired": expired}
