"""Shared by the browser tests: the ASGI server that holds the event streams (it is
defined with the tests that measure the push, tests/e2e/test_realtime.py)."""

from .test_realtime import asgi_server  # noqa: F401 - a fixture
