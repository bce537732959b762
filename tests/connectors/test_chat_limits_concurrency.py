"""The PostgreSQL counters are exact under concurrent hits from many connections:
``INSERT … ON CONFLICT DO UPDATE … RETURNING`` takes the row lock, so no increment
is lost (a get-then-set cache would count fewer hits than were made)."""

import pytest

from connectors import ratelimit
from connectors.models import RateCounter
from connectors.ratelimit import Rate
from tests.concurrency import run_together

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 12
HITS = 10


def test_concurrent_hits_are_each_counted_once():
    rate = Rate(50, 3600)

    def hammer():
        return [ratelimit.hit("race", rate).count for _ in range(HITS)]

    results, errors = run_together([hammer] * THREADS)
    assert errors == [None] * THREADS
    counts = sorted(count for result in results for count in result)
    assert counts == list(range(1, THREADS * HITS + 1))  # every count seen exactly once
    assert RateCounter.objects.get().count == THREADS * HITS
    allowed = sum(1 for count in counts if count <= rate.limit)
    assert allowed == rate.limit
