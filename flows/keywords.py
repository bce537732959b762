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

from dataclasses import dataclass

from conversations.memo import Memo

from .models import KEYWORD_MAX_LENGTH, Flow

KEYWORD_CACHE_SECONDS = 10.0


@dataclass(frozen=True)
class _Keywords:
    lengths: frozenset[int]  # of every active keyword, in characters
    ascii_lowered: frozenset[str]  # the ASCII keywords, lowercased
    other_lengths: frozenset[int]  # of the keywords that are not ASCII

    def may_match(self, words: str) -> bool:
        if len(words) not in self.lengths:
            return False
        if words.isascii() and len(words) not in self.other_lengths:
            return words.lower() in self.ascii_lowered
        return True


# One entry (key None): the active keywords.
_memo = Memo(seconds=KEYWORD_CACHE_SECONDS, watch=[Flow])


def forget() -> None:
    _memo.forget()


def _load() -> _Keywords:
    active = Flow.objects.filter(is_active=True).exclude(trigger_keyword="")
    keywords = list(active.values_list("trigger_keyword", flat=True))
    return _Keywords(
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
    return _memo.get(None, _load).may_match(words)
