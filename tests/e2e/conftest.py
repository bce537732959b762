import pytest

from inbox import choices


@pytest.fixture(autouse=True)
def _fresh_choices():
    """The inbox's dropdown choices are remembered per process (inbox.choices), and
    the live server runs in this process; each test's rows are flushed without a
    signal, so the memory must not outlive the test."""
    choices.forget()
    yield
    choices.forget()
