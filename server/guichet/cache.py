"""A bounded map for verified tokens: a token string, once verified, needs no second check."""

from __future__ import annotations

from itertools import islice
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Bounded(Generic[K, V]):
    """Insertion-ordered dict with a size cap; the oldest entries go first (FIFO eviction)."""

    __slots__ = ("_data", "_max")

    def __init__(self, max_size: int) -> None:
        self._data: dict[K, V] = {}
        self._max = max_size

    def get(self, key: K) -> V | None:
        return self._data.get(key)

    def put(self, key: K, value: V) -> None:
        if self._max <= 0:
            return
        if len(self._data) >= self._max:
            # Drop the oldest tenth at once: amortised O(1), no per-hit bookkeeping.
            for old in list(islice(self._data, max(1, self._max // 10))):
                del self._data[old]
        self._data[key] = value

    def __len__(self) -> int:
        return len(self._data)
