"""A small per-process memory with a time limit, forgotten when its models change.

Some rows are read on every request and change rarely (API tokens, channels, flow
keywords, the inbox's dropdown choices). Each process keeps what it looked up for a
few seconds; a save or delete of one of the watched models in this process forgets
everything at once *and again when that transaction commits* (another request of this
process may reload the old rows before the commit). A change made by another process
is seen within ``seconds``.

    tokens = Memo(seconds=5, watch=[ApiToken, "auth.User"])
    user = tokens.get(digest, lambda: lookup(digest), keep=lambda user: user is not None)
"""

import time
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save

_MISSING = object()


class Memo:
    def __init__(self, *, seconds: float, watch: Iterable = (), size: int = 1000) -> None:
        self.seconds = seconds
        self.size = size
        self._values: dict[Any, tuple[float, Any]] = {}
        for model in watch:  # a model class or an "app_label.Model" string
            post_save.connect(self._changed, sender=model, weak=False)
            post_delete.connect(self._changed, sender=model, weak=False)

    @staticmethod
    def clock() -> float:
        return time.monotonic()

    def _changed(self, **kwargs) -> None:
        self.forget()
        transaction.on_commit(self.forget)

    def forget(self) -> None:
        self._values = {}

    def peek(self, key: Any = None) -> Any:
        """The remembered value, or None when it is missing or expired."""
        held = self._values.get(key)
        if held is None or held[0] <= self.clock():
            return None
        return held[1]

    def put(self, key: Any, value: Any) -> Any:
        values = self._values
        if len(values) >= self.size and key not in values:
            values = self._values = {}
        values[key] = (self.clock() + self.seconds, value)
        return value

    def get(
        self,
        key: Any,
        load: Callable[[], Any],
        *,
        keep: Callable[[Any], bool] = lambda value: True,
    ) -> Any:
        """The value for ``key``, loaded (and remembered if ``keep`` says so) when it
        is missing or expired."""
        held = self._values.get(key, _MISSING)
        if held is not _MISSING and held[0] > self.clock():
            return held[1]
        value = load()
        if keep(value):
            self.put(key, value)
        else:
            self._values.pop(key, None)
        return value
