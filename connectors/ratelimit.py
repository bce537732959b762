"""Who the client is, and how much it may do: fixed-window counters shared by every
process and host (issue 12.2: the anonymous web chat must not flood the inbox).

**The client's address** (``client_address``) is ``REMOTE_ADDR`` unless
``TRUSTED_PROXY_COUNT`` says how many reverse proxies of ours stand in front of the
app: then it is that many entries from the right of ``X-Forwarded-For`` (each proxy
appends the address it saw, so entries further left are written by the client and
never trusted). An IPv6 address counts as its /64, which one client usually holds
whole. The login throttling (django-axes) uses the same function.

**The counters** (``hit``) count hits per key in a fixed window (``rate`` like
``"20/1m"``). Two stores, chosen by ``RATE_LIMIT_STORE``:

- ``postgresql`` (the default; no extra infrastructure): one row per key in
  ``connectors_ratecounter``, moved on by a single ``INSERT … ON CONFLICT DO UPDATE
  … RETURNING``. PostgreSQL takes the row lock for the update, so concurrent hits
  from any number of processes are counted exactly once each: no lost increments,
  which a get-then-set cache (Django's DatabaseCache ``incr``, hence django-ratelimit
  on it) cannot promise. Its own autocommit statement, so a rolled-back request still
  counts.
- ``cache``: Django's ``ratelimit`` cache (``CACHES``), e.g. Redis when
  ``REDIS_URL``/``CACHE_URL`` is set: ``add`` then ``incr``, both atomic in Redis.

A hit is counted even when it is refused, so a client that keeps hammering stays
refused until its window ends.
"""

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import caches
from django.db import connection
from django.http import HttpRequest
from django.utils import timezone

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")


@dataclass(frozen=True)
class Rate:
    limit: int
    seconds: int

    @classmethod
    def parse(cls, value: str) -> "Rate":
        """``"6/12h"``: 6 hits per 12 hours (``s``, ``m``, ``h``, ``d``; ``"20/m"`` too).
        A limit of 0 switches the check off."""
        match = RATE_RE.match(value or "")
        if not match:
            raise ValueError(f"{value!r} is not a rate such as '20/1m' or '6/12h'.")
        count, amount, unit = match.groups()
        return cls(int(count), int(amount or 1) * UNITS[unit])

    def __str__(self) -> str:
        return f"{self.limit}/{self.seconds}s"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int
    retry_after: int  # seconds until the window ends


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP address, trusting ``X-Forwarded-For`` only as far as
    ``TRUSTED_PROXY_COUNT`` proxies of ours wrote it; None when it is not an address.
    (django-axes records this one.)"""
    address = request.META.get("REMOTE_ADDR", "")
    proxies = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if proxies > 0:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= proxies:
            address = forwarded[-proxies]
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


def client_address(request: HttpRequest) -> str:
    """The key of the client's address for the counters: its IP, or its /64 for IPv6
    (one client usually holds a whole /64)."""
    ip = client_ip(request)
    if ip is None:
        return "unknown"
    if ":" in ip:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return ip


_UPSERT = """
INSERT INTO connectors_ratecounter (key, window_ends_at, count)
VALUES (%(key)s, %(now)s + %(window)s, 1)
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN connectors_ratecounter.window_ends_at <= %(now)s
                 THEN 1 ELSE connectors_ratecounter.count + 1 END,
    window_ends_at = CASE WHEN connectors_ratecounter.window_ends_at <= %(now)s
                          THEN %(now)s + %(window)s
                          ELSE connectors_ratecounter.window_ends_at END
RETURNING count, window_ends_at
"""


def _hit_postgresql(key: str, rate: Rate) -> tuple[int, int]:
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT, {"key": key, "now": now, "window": timedelta(seconds=rate.seconds)})
        count, ends_at = cursor.fetchone()
    return count, max(1, int((ends_at - now).total_seconds() + 0.999))


def _hit_cache(key: str, rate: Rate) -> tuple[int, int]:
    cache = caches[settings.RATE_LIMIT_CACHE]
    # The window is part of the key: a new one starts at the next multiple of it.
    now = int(timezone.now().timestamp())
    window = now // rate.seconds
    cache_key = f"rl:{key}:{window}"
    if cache.add(cache_key, 1, timeout=rate.seconds + 1):
        count = 1
    else:
        try:
            count = cache.incr(cache_key)
        except ValueError:  # expired between add and incr
            cache.add(cache_key, 1, timeout=rate.seconds + 1)
            count = 1
    return count, max(1, (window + 1) * rate.seconds - now)


def hit(key: str, rate: Rate) -> Verdict:
    """Count one hit on ``key``; allowed while the window's count stays within the rate."""
    if rate.limit <= 0:
        return Verdict(True, 0, 0)
    key = f"{key}:{rate}"[:200]
    if getattr(settings, "RATE_LIMIT_STORE", "postgresql") == "cache":
        count, retry_after = _hit_cache(key, rate)
    else:
        count, retry_after = _hit_postgresql(key, rate)
    return Verdict(count <= rate.limit, count, retry_after)


def purge_expired() -> int:
    """Delete the counters whose window has ended (``manage.py purge_rate_counters``,
    and now and then from the chat): the table holds one row per live key."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM connectors_ratecounter WHERE window_ends_at < %s", [timezone.now()]
        )
        return cursor.rowcount
