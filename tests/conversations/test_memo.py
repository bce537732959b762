"""conversations.memo: remembered for its time, forgotten on a save and on commit."""

import pytest
from django.db import transaction

from conversations.memo import Memo
from conversations.models import Tag


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(Memo, "clock", staticmethod(lambda: now[0]))
    return now


def test_remembers_until_its_time_runs_out(clock):
    memo = Memo(seconds=5)
    loads = []
    load = lambda: loads.append(1) or len(loads)  # noqa: E731
    assert memo.get("k", load) == 1
    assert memo.get("k", load) == 1
    clock[0] += 5.1
    assert memo.get("k", load) == 2
    assert memo.peek("k") == 2


def test_keep_false_is_never_remembered(clock):
    memo = Memo(seconds=5)
    assert memo.get("k", lambda: None, keep=lambda v: v is not None) is None
    assert memo.peek("k") is None
    assert memo.get("k", lambda: 7, keep=lambda v: v is not None) == 7


def test_size_bound_starts_over(clock):
    memo = Memo(seconds=5, size=2)
    memo.put(1, "a")
    memo.put(2, "b")
    memo.put(3, "c")
    assert memo.peek(1) is None and memo.peek(3) == "c"


@pytest.mark.django_db(transaction=True)
def test_a_save_forgets_at_once_and_again_on_commit(clock):
    memo = Memo(seconds=60, watch=[Tag])
    memo.put("k", "old")
    with transaction.atomic():
        Tag.objects.create(name="memo-test")
        assert memo.peek("k") is None
        memo.put("k", "reloaded before commit")
    assert memo.peek("k") is None


@pytest.mark.django_db
def test_watch_accepts_a_lazy_model_reference(clock, django_user_model):
    memo = Memo(seconds=60, watch=["auth.User"])
    memo.put("k", 1)
    django_user_model.objects.create(username="memo-user")
    assert memo.peek("k") is None
