from pathlib import Path
from types import SimpleNamespace

import pytest

from tests import flush
from tests.concurrency import REDIS_SERVER, redis_server
from tests.factories import StaffFactory, UserFactory


@pytest.fixture(scope="session", autouse=True)
def _flush_only_the_tables_a_test_filled():
    """Transactional tests end with the database emptied as Django's flush empties
    it, without truncating the empty tables (tests/flush.py)."""
    flush.install()
    yield
    flush.uninstall()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Every user fixture hashes a password; the production hasher takes most of a
    second by design, which the tests do not need."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Each test's rows roll back with it; so must the per-process memories (channels,
    the inbox's choices)."""
    from connectors import delivery
    from conversations import inbox_settings
    from inbox import choices

    delivery.channels.forget()
    choices.forget()
    inbox_settings.forget()
    yield
    delivery.channels.forget()
    choices.forget()
    inbox_settings.forget()


@pytest.fixture
def redis_queue(settings, tmp_path):
    """The task queue in a private Redis (RQ, ``TASKS_BACKEND=rq``) for one test: this
    process enqueues there, and ``redis_queue.env`` sends a worker or a web server
    there too. The server is stopped at the end, nothing kept."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (bin/test installs Debian's package)")
    with redis_server(tmp_path) as url:
        settings.RQ_QUEUES = {"default": {"URL": url}}
        settings.TASKS = {"default": {"BACKEND": "config.tasks.RQBackend"}}
        yield SimpleNamespace(url=url, env={"TASKS_BACKEND": "rq", "TASKS_REDIS_URL": url})


@pytest.fixture(params=["database", "rq"])
def queue(request):
    """Runs the test on each task queue: ``None`` for the database (db_worker), the
    ``redis_queue`` for Redis (RQ workers)."""
    return request.getfixturevalue("redis_queue") if request.param == "rq" else None


@pytest.fixture
def agent(db):
    return UserFactory(username="alice", first_name="Alice")


@pytest.fixture
def other_agent(db):
    return UserFactory(username="bob", first_name="Bob")


@pytest.fixture
def staff(db):
    return StaffFactory(username="root")


@pytest.fixture
def agent_client(client, agent):
    client.force_login(agent)
    return client


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Playwright drives Debian's Chromium (playwright's own download is not
    available here)."""
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/lib/chromium/chromium",
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }
