"""Which texts may be a flow's trigger keyword, known without a query.

Every inbound message is checked against the active flows' keywords; almost none is
one. Each process keeps the active keywords for ``KEYWORD_CACHE_SECONDS`` and
forgets them whenever a Flow is saved or deleted here (at once, and again when that
transaction commits); another process's change is seen within the delay.

The cache only rules texts *out*: a text that may be a keyword is still looked up in
the database (``flows.engine.keyword_flow``), which decides, with PostgreSQL's own
case-insensitive comparison. To rule out safely, the test here is looser than the
database's: ``UPPER`` maps character by character (the length in characters does not
change), so a text whose length matches no keyword cannot match; among ASCII texts
and ASCII keywords, case-insensitive equality is equality of ``lower()``; anything
else of the right length goes to the database.
"""

import time
from dataclasses import dataclass

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import KEYWORD_MAX_LENGTH, Flow

KEYWORD_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class _Keywords:
    expires: float
    lengths: frozenset[int]  # of every active keyword, in characters
    ascii_lowered: frozenset[str]  # the ASCII keywords, lowercased
    other_lengths: frozenset[int]  # of the keywords that are not ASCII

    def may_match(self, words: str) -> bool:
        if len(words) not in self.lengths:
            return False
        if words.isascii() and len(words) not in self.other_lengths:
            return words.lower() in self.ascii_lowered
        return True


_cache: list[_Keywords] = []  # zero or one entry; a list so that clearing is atomic


def _clock() -> float:
    return time.monotonic()


def forget() -> None:
    _cache.clear()


@receiver([post_save, post_delete], sender=Flow, dispatch_uid="flows.keyword_cache")
def _flow_changed(**kwargs) -> None:
    forget()
    # Another request of this process may reload before this change commits.
    transaction.on_commit(forget)


def _load() -> _Keywords:
    active = Flow.objects.filter(is_active=True).exclude(trigger_keyword="")
    keywords = list(active.values_list("trigger_keyword", flat=True))
    return _Keywords(
        expires=_clock() + KEYWORD_CACHE_SECONDS,
        lengths=frozenset(len(k) for k in keywords),
        ascii_lowered=frozenset(k.lower() for k in keywords if k.isascii()),
        other_lengths=frozenset(len(k) for k in keywords if not k.isascii()),
    )


def normalise(text: str) -> str:
    """The words of a message as a keyword is compared: spaces collapsed, lowercase."""
    return " ".join(text.split()).lower()


def may_be_keyword(text: str) -> bool:
    """False when ``text`` cannot be an active flow's keyword (most messages), with
    no query once the keywords are loaded."""
    words = normalise(text)
    if not words or len(words) > KEYWORD_MAX_LENGTH:
        return False
    cached = _cache[0] if _cache else None
    if cached is None or cached.expires <= _clock():
        cached = _load()
        _cache[:] = [cached]
    return cached.may_match(words)
