"""The State programme's gauges, refreshed from Redis by every worker (like the draw's).

Its acts happen on any worker and in ops commands (reclaim, purge, lotteries), so the numbers
ops watch come from the counts in Redis, not from one worker's counters: per games the pool
and the invariant's terms; per programme the tickets allocated but not assigned, its act
counters (``stats:<P>``), the minors still without guardian consent, and its reclaim instant
(the alert ``GuichetProgrammeUnassignedNearReclaim`` compares the two).
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import msgspec

from guichet import metrics
from guichet.draw import outbox
from guichet.programme import model
from guichet.store.client import Store
from guichet.store.keys import PROGRAMMES_INDEX, ProgrammeKeys

#: The per-programme act counters exported (a bounded label); others in stats:<P> are not.
ACTS = ("allocated", "assigned", "withdrawn", "reassigned", "returned", "reclaimed", "candidates",
        "purged")  # fmt: skip


class _Spec(msgspec.Struct):
    reclaim_on: date


def _total(counts: dict[Any, Any]) -> int:
    return sum(int(v) for v in counts.values())


async def refresh(store: Store) -> None:
    client = store.client
    index: dict[Any, Any] = await client.hgetall(PROGRAMMES_INDEX)
    by_games: dict[str, list[str]] = {}
    for programme, games in index.items():
        by_games.setdefault(games.decode(), []).append(programme.decode())
    for games in model.GAMES:
        k = ProgrammeKeys(games)
        for term, key in (("loaded", k.loaded), ("pool", k.pool), ("assigned", k.assigned),
                          ("used", k.used)):  # fmt: skip
            metrics.PROGRAMME_TERMS.labels(games, term).set(_total(await client.hgetall(key)))
        allocated = 0
        for programme in by_games.get(games, []):
            unassigned = _total(await client.hgetall(k.alloc(programme)))
            allocated += unassigned
            metrics.PROGRAMME_UNASSIGNED.labels(programme).set(unassigned)
            stats: dict[Any, Any] = await client.hgetall(k.stats(programme))
            for act in ACTS:
                metrics.PROGRAMME_ACTS.labels(programme, act).set(int(stats.get(act.encode(), 0)))
            missing = int(stats.get(b"consents_missing", 0))
            metrics.PROGRAMME_CONSENTS_MISSING.labels(programme).set(missing)
            raw = await client.hget(k.programmes, programme)
            if raw is not None:
                spec = msgspec.json.decode(raw, type=_Spec)
                at = model.reclaim_at(spec.reclaim_on).timestamp()
                metrics.PROGRAMME_RECLAIM_AT.labels(programme).set(at)
        metrics.PROGRAMME_TERMS.labels(games, "allocated").set(allocated)
        await _outbox(client, outbox.PROGRAMME + games)


async def _outbox(client: Any, target: str) -> None:
    """The games' ticket-link notices, in the outbox gauges (``sale`` = programme:<games>), so
    that GuichetOutboxLagging watches them too."""
    b = await outbox.backlog(client, target)
    metrics.OUTBOX_BACKLOG.labels(target, "undelivered").set(b.undelivered)
    metrics.OUTBOX_BACKLOG.labels(target, "pending").set(b.pending)
    lag = 0.0 if b.oldest_due_us is None else max(0.0, time.time() - b.oldest_due_us / 1e6)
    metrics.OUTBOX_LAG.labels(target).set(lag)
