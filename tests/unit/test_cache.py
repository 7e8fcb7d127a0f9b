"""The bounded map of verified tokens: capped, oldest out first, off when sized 0."""

from __future__ import annotations

from guichet.cache import Bounded


def test_bounded_evicts_the_oldest_tenth_when_full() -> None:
    cache: Bounded[int, str] = Bounded(20)
    for i in range(20):
        cache.put(i, str(i))
    assert len(cache) == 20
    cache.put(20, "20")
    assert len(cache) == 19  # the two oldest went, the new one came in
    assert cache.get(0) is None
    assert cache.get(1) is None
    assert cache.get(2) == "2"
    assert cache.get(20) == "20"


def test_size_zero_remembers_nothing() -> None:
    cache: Bounded[str, str] = Bounded(0)
    cache.put("a", "b")
    assert cache.get("a") is None
    assert len(cache) == 0
