"""The counters in Redis (``REDIS_URL``/``CACHE_URL`` set): a real redis-server on a
free loopback port, several threads hitting one key at once, every hit counted once.
Skipped where redis-server is not installed (``apt-get install redis-server``)."""

import shutil
import socket
import subprocess
import time

import pytest

from connectors import ratelimit
from connectors.ratelimit import Rate
from tests.concurrency import run_together

REDIS = shutil.which("redis-server")
# The cache store's windows are aligned on multiples of the period: a long one, so
# that a test never straddles two.
WINDOW = 30 * 86400
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")


@pytest.fixture
def redis_url(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(  # noqa: S603 - our own redis-server, loopback only
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):  # a bounded wait for the socket
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert server.poll() is None, "redis-server exited"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def redis_store(settings, redis_url):
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
        },
    }
    settings.RATE_LIMIT_STORE = "cache"


def test_redis_counts_within_a_window(redis_store):
    verdicts = [ratelimit.hit("redis-test", Rate(2, WINDOW)) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, False, False]


def test_concurrent_hits_in_redis_are_each_counted_once(redis_store):
    rate = Rate(1000, WINDOW)

    def hammer():
        return [ratelimit.hit("redis-race", rate).count for _ in range(10)]

    results, errors = run_together([hammer] * 8)
    assert errors == [None] * 8
    counts = sorted(count for result in results for count in result)
    assert counts == list(range(1, 81))
