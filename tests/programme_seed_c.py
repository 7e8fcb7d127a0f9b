"""Store-level seeding for the designation and ticket tests (slice C of issue 14).

Slices ran in parallel, so these tests cannot use the pool API (slice A) or the people API
(slice B) yet: this module writes the keys AS THE SHARED DESIGN SPECIFIES them (sessions,
programme specs and PROGRAMMES_INDEX, loaded/pool/alloc counts, candidate records) straight
into Valkey. The integrator switches the tests to A's and B's APIs after the merge."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import msgspec

from guichet.programme.identity import NameBox
from guichet.programme.model import item
from guichet.programme.pool import withdraw_until_us
from guichet.store.client import Store
from guichet.store.keys import PROGRAMMES_INDEX, ProgrammeKeys

GAMES = "olympic"


def now_us() -> int:
    return time.time_ns() // 1000


async def session(store: Store, sid: str, day: date, games: str = GAMES) -> None:
    k = ProgrammeKeys(games)
    value = {"date": day.isoformat(), "games": games, "name": f"Session {sid}",
             "withdraw_until_us": withdraw_until_us(day)}  # fmt: skip
    await store.client.hset(k.sessions, sid, msgspec.json.encode(value))


async def programme(store: Store, pid: str, public: str = "youth", games: str = GAMES) -> None:
    k = ProgrammeKeys(games)
    spec = {"id": pid, "public": public, "games": games, "operator": f"op-{pid}",
            "reclaim_on": "2024-05-01", "retention_until": "2025-01-01", "criteria": [],
            "by": "central", "at": now_us()}  # fmt: skip
    await store.client.hset(k.programmes, pid, msgspec.json.encode(spec))
    await store.client.hset(PROGRAMMES_INDEX, pid, games)


async def allocate(
    store: Store, sid: str, category: str, by_programme: dict[str, int], pool: int = 0,
    games: str = GAMES,
) -> None:  # fmt: skip
    """Load ``pool + sum(allocations)`` tickets of the item and allocate them."""
    k = ProgrammeKeys(games)
    field = item(sid, category)
    await store.client.hincrby(k.loaded, field, pool + sum(by_programme.values()))
    await store.client.hincrby(k.pool, field, pool)
    for pid, n in by_programme.items():
        await store.client.hincrby(k.alloc(pid), field, n)
        await store.client.hincrby(k.stats(pid), "allocated", n)


async def candidate(
    store: Store, pid: str, person: str, lottery: str | None = None, *, group: str | None = None,
    majority_on: str = "2000-01-01", guardian: bool = False, name: str | None = None,
    box: NameBox | None = None, games: str = GAMES,
) -> None:  # fmt: skip
    """An eligible candidate record (the shared design's CandidateRecord)."""
    at = now_us()
    record: dict[str, Any] = {
        "lottery": lottery, "group": group, "criteria": [], "eligible": True,
        "consent": {"version": "v1", "at": at, "by": "op-1"}, "majority_on": majority_on,
        "guardian": {"relationship": "parent", "by": "op-1", "at": at} if guardian else None,
        "reuse": None,
        "name": box.seal(games, person, name) if box is not None and name else None,
        "state": "candidate", "ticket": None, "by": "op-1", "at": at,
    }  # fmt: skip
    k = ProgrammeKeys(games)
    await store.client.hset(k.candidates(pid), person, msgspec.json.encode(record))
    await store.client.hincrby(k.stats(pid), "candidates", 1)
    await store.client.hincrby(k.stats(pid), "eligible", 1)


async def group(store: Store, pid: str, gid: str, leader: str, games: str = GAMES) -> None:
    k = ProgrammeKeys(games)
    value = {"leader": leader, "mobility_needs": 0, "by": "op-1", "at": now_us()}
    await store.client.hset(k.groups(pid), gid, msgspec.json.encode(value))
    await store.client.hset(k.leaders(pid), leader, gid)


async def invariant(store: Store, programmes: list[str], games: str = GAMES) -> dict[str, int]:
    """Per item, pool + sum(alloc) + assigned + used - loaded (all zero when it holds)."""
    k = ProgrammeKeys(games)
    out: dict[str, int] = {}
    loaded: dict[bytes, bytes] = await store.client.hgetall(k.loaded)  # type: ignore[assignment]
    for raw_field, raw_total in loaded.items():
        f = raw_field.decode()
        parts = [await store.client.hget(k.pool, f), await store.client.hget(k.assigned, f),
                 await store.client.hget(k.used, f)]  # fmt: skip
        parts += [await store.client.hget(k.alloc(p), f) for p in programmes]
        out[f] = sum(int(x or 0) for x in parts) - int(raw_total)
    return out


async def counts(store: Store, field: str, pid: str, games: str = GAMES) -> dict[str, int]:
    k = ProgrammeKeys(games)
    keys = {"pool": k.pool, "alloc": k.alloc(pid), "assigned": k.assigned, "used": k.used}
    return {n: int(await store.client.hget(key, field) or 0) for n, key in keys.items()}


async def link_codes(store: Store, games: str = GAMES) -> dict[str, str]:
    """Ticket id -> link code, from the outbox notices (what the messenger would send)."""
    out: dict[str, str] = {}
    notices: Any = await store.client.xrange(ProgrammeKeys(games).outbox)
    for _, fields in notices:
        f = {a.decode(): b.decode() for a, b in fields.items()}
        out[f["ticket"]] = f["link"].rpartition("#")[2]
    return out


async def candidate_record(store: Store, pid: str, person: str, games: str = GAMES) -> Any:
    raw = await store.client.hget(ProgrammeKeys(games).candidates(pid), person)
    return None if raw is None else msgspec.json.decode(raw)


async def close_lottery(store: Store, pid: str, lottery: str, games: str = GAMES) -> None:
    """The candidate list closes: ``closes_at`` moved to just after the commitment (time
    passing, without waiting for it)."""
    key = ProgrammeKeys(games).lottery(pid, lottery)
    committed = int(await store.client.hget(key, "committed_at"))  # type: ignore[arg-type]
    await store.client.hset(key, "closes_at", committed + 1)
