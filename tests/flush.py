"""After each transactional test (``transaction=True``, ``live_server``, the browser
tests): the database emptied as Django's flush empties it, at a fraction of the cost.

Django's ``TransactionTestCase`` runs ``flush``: one ``TRUNCATE`` of all 48 tables,
then ``post_migrate``, which inserts again every content type and permission that
the ``TRUNCATE`` removed. Measured on the throwaway cluster of bin/test: 115 ms a
test, less than half of it the ``TRUNCATE``; the rest re-creates the content types
and permissions.

Here, for a test case with neither ``available_apps`` nor ``serialized_rollback``
(those keep Django's own flush):

1. One query finds the tables that hold rows.
2. One ``TRUNCATE … CASCADE`` empties them. PostgreSQL truncates a table only
   together with the tables whose foreign keys point at it: ``CASCADE`` adds those,
   which are empty or already listed. Sequences go on, as with Django's flush
   (``reset_sequences=False``).
3. The content types and permissions stay when they are exactly, row for row, what
   the last ``post_migrate`` left (a digest of every row); otherwise they are
   truncated with the rest and ``post_migrate`` runs, as in Django's flush.
4. The tables that are not Django's (``parley_counts``, emptied by the conversation
   tables' ``TRUNCATE`` triggers) are checked: if one still holds rows, Django's
   own flush runs after all.

So each table ends as Django's flush leaves it: empty; the content types and
permissions present, with the same ids instead of new ones.
"""

import contextlib
from importlib import import_module

from django.apps import apps
from django.core.management import call_command
from django.core.management.color import no_style
from django.core.management.sql import emit_post_migrate_signal
from django.db import connections, transaction
from django.test import TransactionTestCase

# Rows re-created by post_migrate (contenttypes, auth): kept when unchanged.
REMADE_BY_POST_MIGRATE = ("django_content_type", "auth_permission")
# Django's own bookkeeping, never flushed.
NOT_FLUSHED = ("django_migrations",)

_django_flush = TransactionTestCase._fixture_teardown
# alias → the digest of the content types and permissions that post_migrate left.
_after_post_migrate: dict[str, str] = {}


def _digest(connection) -> str:
    parts = [
        f"(SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY id), '')) FROM {table} t)"  # noqa: S608
        for table in map(connection.ops.quote_name, REMADE_BY_POST_MIGRATE)
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {' || '.join(parts)}")
        return cursor.fetchone()[0]


def _holding_rows(connection, tables: list[str]) -> list[str]:
    if not tables:
        return []
    quote = connection.ops.quote_name
    probes = " UNION ALL ".join(
        f"(SELECT {n} FROM {quote(table)} LIMIT 1)"  # noqa: S608 - table names
        for n, table in enumerate(tables)
    )
    with connection.cursor() as cursor:
        cursor.execute(probes)
        return [tables[n] for (n,) in cursor.fetchall()]


def _flush(alias: str) -> bool:
    """Empties the database ``alias`` as Django's flush does; False when it cannot
    vouch for the result (then Django's flush runs)."""
    connection = connections[alias]
    django_tables = connection.introspection.django_table_names(
        only_existing=True, include_views=False
    )
    others = [
        table
        for table in connection.introspection.table_names(include_views=False)
        if table not in django_tables and table not in NOT_FLUSHED
    ]
    keep = _after_post_migrate.get(alias) == _digest(connection)
    candidates = [t for t in django_tables if not (keep and t in REMADE_BY_POST_MIGRATE)]
    full = _holding_rows(connection, candidates)
    if full:
        sql = connection.ops.sql_flush(no_style(), full, allow_cascade=True)
        with transaction.atomic(using=alias, savepoint=connection.features.can_rollback_ddl):
            connection.ops.execute_sql_flush(sql)
    if _holding_rows(connection, others):
        return False
    if not keep:
        for app_config in apps.get_app_configs():  # as flush does: their receivers
            with contextlib.suppress(ImportError):
                import_module(".management", app_config.name)
        emit_post_migrate_signal(0, False, alias)
        _after_post_migrate[alias] = _digest(connection)
    return True


def _fixture_teardown(self) -> None:
    if self.available_apps is not None or self.serialized_rollback:
        return _django_flush(self)
    for alias in self._databases_names(include_mirrors=False):
        if not _flush(alias):
            call_command(
                "flush",
                verbosity=0,
                interactive=False,
                database=alias,
                reset_sequences=False,
                allow_cascade=False,
                inhibit_post_migrate=False,
            )
            _after_post_migrate[alias] = _digest(connections[alias])


def install() -> None:
    TransactionTestCase._fixture_teardown = _fixture_teardown


def uninstall() -> None:
    TransactionTestCase._fixture_teardown = _django_flush
