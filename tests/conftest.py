import pytest

from tests.factories import StaffFactory, UserFactory


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
