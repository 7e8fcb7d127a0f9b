"""A worker's memory of the programmes it has met, so a programme's act is one round trip.

- **games**: programme -> games (``PROGRAMMES_INDEX``). Immutable once the programme exists
  (``PUT /v1/admin/programmes/{P}`` refuses another games), so a hit never needs checking.
  Positives only: a programme created on another worker is read from Redis at its first use
  here, and an unknown id is asked again each time.
- **spec**: the programme's spec JSON as last seen. Never trusted alone: a script given it
  compares it with the spec in Redis and answers 'stale' with the current one when they
  differ (the caller stores that and retries once), so a spec changed on another worker is
  seen at the next act.

One per store (so per worker; a test's fresh store starts empty). Programme ids are created by
operators: the maps stay small."""

from __future__ import annotations

import weakref
from typing import Any

from guichet.store.client import Store
from guichet.store.keys import PROGRAMMES_INDEX


class ProgrammeCache:
    def __init__(self) -> None:
        self.games: dict[str, str] = {}
        self.specs: dict[str, bytes] = {}


_CACHES: weakref.WeakKeyDictionary[Store, ProgrammeCache] = weakref.WeakKeyDictionary()


def of(store: Store) -> ProgrammeCache:
    cache = _CACHES.get(store)
    if cache is None:
        cache = _CACHES[store] = ProgrammeCache()
    return cache


async def games_of(store: Store, programme: str) -> str | None:
    """The programme's games (from this worker's memory once seen), None when unknown."""
    cache = of(store)
    games = cache.games.get(programme)
    if games is None:
        raw: Any = await store.client.hget(PROGRAMMES_INDEX, programme)
        if raw is None:
            return None
        games = cache.games[programme] = raw.decode() if isinstance(raw, bytes) else str(raw)
    return games


def remember_games(store: Store, programme: str, games: str) -> None:
    """Record what this worker just wrote to ``PROGRAMMES_INDEX``."""
    of(store).games[programme] = games


def spec(store: Store, programme: str) -> bytes:
    """The spec JSON last seen here (b'' when none: the script answers 'stale' with it)."""
    return of(store).specs.get(programme, b"")


def remember_spec(store: Store, programme: str, raw: bytes | str) -> None:
    of(store).specs[programme] = raw.encode() if isinstance(raw, str) else raw
