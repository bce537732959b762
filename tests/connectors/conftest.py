import pytest


@pytest.fixture(autouse=True)
def _test_settings(settings):
    """Plain static URLs (the manifest exists only after collectstatic) and a fast
    password hasher for the user fixtures."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
