import pytest

from inbox import choices


@pytest.fixture(autouse=True)
def _fresh_choices():
    """The dropdown choices are remembered per process (inbox.choices); a test's
    rows roll back without a signal, so the memory must not outlive the test."""
    choices.forget()
    yield
    choices.forget()
