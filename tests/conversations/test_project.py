"""Project-level guarantees: settings from the environment, the demo data, migrations."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from conversations.models import Contact, Conversation, Message, Tag

ROOT = Path(__file__).resolve().parents[2]


def _django_check(env_overrides):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    env.update(env_overrides)
    return subprocess.run(  # noqa: S603 — our own manage.py with a fixed argv
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_refuses_to_start_with_debug_off_and_no_secret_key():
    result = _django_check({"DEBUG": "false"})
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_starts_with_a_secret_key():
    result = _django_check({"DEBUG": "false", "SECRET_KEY": "a-real-secret"})
    assert result.returncode == 0, result.stderr


def test_debug_alone_is_enough_for_local_development():
    result = _django_check({"DEBUG": "true"})
    assert result.returncode == 0, result.stderr


def test_postgres_uses_a_connection_pool():
    from django.db import connection

    assert connection.settings_dict["ENGINE"] == "django.db.backends.postgresql"
    assert connection.settings_dict["OPTIONS"].get("pool")


@pytest.mark.parametrize("url", ["sqlite:///db.sqlite3", "mysql://root@127.0.0.1/parley"])
def test_refuses_a_database_that_is_not_postgresql(url):
    result = _django_check({"DEBUG": "true", "DATABASE_URL": url})
    assert result.returncode != 0
    assert "DATABASE_URL must point at PostgreSQL" in result.stderr


def test_without_database_url_it_points_at_the_embedded_cluster():
    from config.pgembed import default_url

    result = subprocess.run(  # noqa: S603 — our own manage.py with a fixed argv
        [
            sys.executable,
            "-c",
            "from django.conf import settings; import django; "
            "print(settings.DATABASES['default']['HOST'])",
        ],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "true",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str((ROOT / ".pgdata").resolve())
    assert default_url(ROOT / ".pgdata", "parley").endswith("/parley")


@pytest.mark.django_db
def test_demo_data_covers_every_status_and_is_idempotent(capsys):
    call_command("seed_demo")
    contacts, conversations = Contact.objects.count(), Conversation.objects.count()
    assert 50 <= contacts <= 80
    statuses = set(Conversation.objects.values_list("status", flat=True))
    assert statuses == {"not_contacted", "new", "in_progress", "in_flow", "closed", "resolved"}
    # CSAT is on in the demo: surveys awaited, and ratings stored for their agents.
    awaited = Conversation.objects.filter(status="resolved")
    assert awaited.count() == awaited.filter(messages__sender_kind="survey").count() > 0
    rated = Conversation.objects.filter(rating__isnull=False)
    assert rated.count() >= 5 and not rated.filter(closed_by__isnull=True).exists()
    assert Conversation.objects.archived().exists()
    assert Conversation.objects.closed().filter(tags__isnull=False).exists()
    # Some contacts have several conversations in their history.
    assert contacts < conversations
    assert set(Contact.objects.values_list("channel", flat=True)) == {"web", "whatsapp", "email"}
    # Nothing happened in the future (a long thread started recently ends by now).
    assert not Conversation.objects.filter(last_activity_at__gt=timezone.now()).exists()
    assert not Message.objects.filter(created_at__gt=timezone.now()).exists()

    call_command("seed_demo")
    assert (Contact.objects.count(), Conversation.objects.count()) == (contacts, conversations)
    assert Tag.objects.count() == 6
    assert "nothing added" in capsys.readouterr().out


PRODUCTION_ENV = {
    "DEBUG": "false",
    "HTTPS": "true",
    "SECRET_KEY": "k" * 20 + "-production-like-secret-with-entropy-0123456789",
    "ALLOWED_HOSTS": "parley.example.com",
}


def test_check_deploy_is_clean_with_production_settings():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    env.update(PRODUCTION_ENV)
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_secure_the_cookies():
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    env.update(PRODUCTION_ENV)
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
        "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.X_FRAME_OPTIONS, "
        "s.SECURE_CONTENT_TYPE_NOSNIFF)"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env | {"DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["True", "True", "True", "True", "31536000", "DENY", "True"]
