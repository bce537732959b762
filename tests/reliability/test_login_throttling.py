"""Issue 12.3: login is throttled against password guessing (django-axes): after
LOGIN_FAILURE_LIMIT failures for a username, or from an address, even the right
password is refused with a sentence on the login page, until the cool-off ends. The
inbox's login and the admin's alike."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client

from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"
LIMIT = 5


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT


@pytest.fixture
def dora():
    user = UserFactory(username="dora")
    user.set_password(PASSWORD)
    user.save()
    return user


def _login(username, password, address="203.0.113.7", path="/login/"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(path, {"username": username, "password": password, "next": "/inbox/"})
    return client, response


def _logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def _fail(username, times, address="203.0.113.7", path="/login/"):
    for _ in range(times):
        _login(username, "wrong", address, path)


def test_after_the_limit_even_the_right_password_is_refused_with_a_message(dora):
    _fail("dora", LIMIT)
    client, response = _login("dora", PASSWORD)
    assert response.status_code == 429
    assert not _logged_in(client)
    html = response.content.decode()
    assert "Too many failed log-ins" in html and "15 minutes" in html
    assert 'name="username"' in html  # the login page itself, with its form
    assert response["Retry-After"] == "900"


def test_below_the_limit_the_right_password_works(dora):
    _fail("dora", LIMIT - 1)
    client, response = _login("dora", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def test_the_username_is_locked_from_every_address(dora):
    _fail("dora", LIMIT, address="203.0.113.7")
    client, response = _login("dora", PASSWORD, address="198.51.100.20")
    assert response.status_code == 429 and not _logged_in(client)


def test_another_user_from_another_address_is_unaffected(dora):
    erin = UserFactory(username="erin")
    erin.set_password(PASSWORD)
    erin.save()
    _fail("dora", LIMIT, address="203.0.113.7")
    client, response = _login("erin", PASSWORD, address="198.51.100.20")
    assert response.status_code == 302 and _logged_in(client)


def test_an_address_guessing_many_usernames_is_locked_for_all_of_them(dora):
    for n in range(LIMIT):
        _login(f"guess{n}", "wrong", address="203.0.113.9")
    client, response = _login("dora", PASSWORD, address="203.0.113.9")
    assert response.status_code == 429 and not _logged_in(client)
    # dora herself, from her own address, is not the one being locked out
    client, response = _login("dora", PASSWORD, address="198.51.100.20")
    assert response.status_code == 302 and _logged_in(client)


def test_the_lock_ends_after_the_cool_off(dora, settings):
    _fail("dora", LIMIT)
    assert _login("dora", PASSWORD)[1].status_code == 429
    # As if LOGIN_LOCKOUT_MINUTES had passed: the attempts are that old.
    age = timedelta(minutes=settings.LOGIN_LOCKOUT_MINUTES, seconds=1)
    for attempt in AccessAttempt.objects.all():
        AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=attempt.attempt_time - age)
    client, response = _login("dora", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def test_the_admin_login_is_throttled_too():
    staff = StaffFactory(username="root")
    staff.set_password(PASSWORD)
    staff.save()
    _fail("root", LIMIT, path="/admin/login/")
    client, response = _login("root", PASSWORD, path="/admin/login/?next=/admin/")
    assert response.status_code == 429
    assert not _logged_in(client)
    html = response.content.decode()
    assert "Too many failed log-ins" in html and "Parley back office" in html


def test_x_forwarded_for_is_ignored_without_trusted_proxies(dora):
    for n in range(LIMIT):
        client = Client(REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
        client.post("/login/", {"username": f"guess{n}", "password": "wrong"})
    client, response = _login("dora", PASSWORD, address="203.0.113.7")
    assert response.status_code == 429
