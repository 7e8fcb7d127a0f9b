"""The pool's Redis side: load the pool, put programmes, allocate, reclaim, audit.

Each act is one script on the games' slot (``ProgrammeKeys``), so pool + allocated-unassigned
+ assigned + used = loaded holds at every instant, on a Cluster too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

import msgspec

from guichet.programme import cache, model
from guichet.programme.acting import Acting, check, run
from guichet.programme.pool import Pool, ProgrammeBody, ProgrammeSpec, SessionInfo, spec_of
from guichet.programme.pool_refusals import AllocateCode, LoadCode, PutCode, ReclaimCode
from guichet.refusals import code_of
from guichet.store.client import Store
from guichet.store.keys import PROGRAMMES_INDEX, ProgrammeKeys
from guichet.store.scripts import LuaScript
from guichet.units import US_PER_S

POOL_LOAD = LuaScript("guichet.programme", "pool_load.lua")
PROGRAMME_PUT = LuaScript("guichet.programme", "programme_put.lua")
ALLOCATE = LuaScript("guichet.programme", "allocate.lua")
RECLAIM = LuaScript("guichet.programme", "reclaim.lua")
POOL_LEVELS = LuaScript("guichet.programme", "pool_levels.lua")
SCRIPTS = (POOL_LOAD, PROGRAMME_PUT, ALLOCATE, RECLAIM, POOL_LEVELS)

_SPEC = msgspec.json.Decoder(ProgrammeSpec)
_SESSION = msgspec.json.Decoder(SessionInfo)


class Loaded(NamedTuple):
    """pool_load's answer for one games: 'ok' with the tickets loaded, or 'pool_loaded' with
    the tickets loaded before."""

    games: str
    code: LoadCode
    tickets: int


class Put(NamedTuple):
    code: PutCode | None  # None: 'games_fixed' (the index holds it in another games)
    spec: ProgrammeSpec | None
    fixed: str = ""  # the public (public_fixed) or games (games_fixed) it keeps


class Allocated(NamedTuple):
    code: AllocateCode
    item: str
    tickets: int  # allocated ('ok') or left in the pool ('pool_short')


class Reclaimed(NamedTuple):
    code: ReclaimCode
    tickets: int
    reclaim_at_us: int


@dataclass
class Levels:
    """One consistent read of a games' counts, per item."""

    games: str
    loaded: dict[str, int]
    pool: dict[str, int]
    assigned: dict[str, int]
    used: dict[str, int]
    alloc: dict[str, dict[str, int]] = field(default_factory=dict)  # programme -> item -> n

    def allocated(self, item: str) -> int:
        return sum(a.get(item, 0) for a in self.alloc.values())


def audit(levels: Levels) -> list[str]:
    """Breaches of pool + allocated-unassigned + assigned + used = loaded, and negative counts,
    each naming its item."""
    problems = []
    items = set(levels.loaded) | set(levels.pool) | set(levels.assigned) | set(levels.used)
    for counts in levels.alloc.values():
        items |= set(counts)
    for item in sorted(items):
        loaded = levels.loaded.get(item, 0)
        p, u, s = levels.pool.get(item, 0), levels.assigned.get(item, 0), levels.used.get(item, 0)
        a = levels.allocated(item)
        if p + a + u + s != loaded:
            problems.append(f"{item}: pool {p} + allocated {a} + assigned {u} + used {s} "
                            f"!= loaded {loaded}")  # fmt: skip
        negative = [name for name, n in (("pool", p), ("assigned", u), ("used", s)) if n < 0]
        negative += [f"alloc:{P}" for P, c in sorted(levels.alloc.items()) if c.get(item, 0) < 0]
        if negative:
            problems.append(f"{item}: negative count in {', '.join(negative)}")
    return problems


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: list[bytes]) -> dict[str, int]:
    return {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}


def reclaim_at_us(day: date) -> int:
    return int(model.reclaim_at(day).timestamp()) * US_PER_S


class PoolService:
    """The central pool, programmes and their allocations."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def load(self, pool: Pool, acting: Acting) -> list[Loaded]:
        """Load each games of the file, once. If any games of the file is loaded already,
        nothing is loaded and that games is answered 'pool_loaded'. The agent's declaration
        is checked for every games first: a refusal loads and records nothing."""
        for games in sorted(pool.counts):
            await check(self.store, ProgrammeKeys(games), acting)
        for games in sorted(pool.counts):
            k = ProgrammeKeys(games)
            if await self.store.client.exists(k.loaded):
                code, total = await self._load(games, pool, acting)  # answers 'pool_loaded'
                return [Loaded(games, code, total)]
        return [Loaded(g, *(await self._load(g, pool, acting))) for g in sorted(pool.counts)]

    async def _load(self, games: str, pool: Pool, acting: Acting) -> tuple[LoadCode, int]:
        k = ProgrammeKeys(games)
        counts = pool.counts[games]
        items = [x for pair in counts.items() for x in pair]
        sessions = [x for s, info in pool.sessions.get(games, {}).items()
                    for x in (s, msgspec.json.encode(info))]  # fmt: skip
        code, total = await run(
            self.store, POOL_LOAD, k, [k.loaded, k.pool, k.sessions, k.journal(), k.calendar],
            [acting.actor, len(counts), *items, *sessions], acting,
        )  # fmt: skip
        return code_of(code, LoadCode, "pool_load"), int(total)

    async def games_of(self, programme: str) -> str | None:
        return await cache.games_of(self.store, programme)

    async def put(self, programme: str, body: ProgrammeBody, acting: Acting) -> Put:
        known = await self.games_of(programme)
        if known is None:  # a refused agent must not claim the id (the claim is not undone)
            await check(self.store, ProgrammeKeys(body.games), acting, programme=programme)
        # A new id is claimed for this games first: two PUTs naming different games at once
        # must not create it in both slots (the index is its own slot).
        if known is None and not await self.store.client.hsetnx(
            PROGRAMMES_INDEX, programme, body.games
        ):
            known = await cache.games_of(self.store, programme)
        if known is not None and known != body.games:
            return Put(None, None, known)
        k = ProgrammeKeys(body.games)
        spec = spec_of(programme, body, acting.actor)
        code, detail = await run(
            self.store, PROGRAMME_PUT, k, [k.programmes, k.journal()],
            [programme, msgspec.json.encode(spec), acting.actor], acting, programme=programme,
        )  # fmt: skip
        answer = code_of(code, PutCode, "programme_put")
        if answer == "public_fixed":
            return Put(answer, None, detail.decode())
        cache.remember_games(self.store, programme, body.games)
        spec.at = int(detail)
        return Put(answer, spec)

    async def spec(self, programme: str) -> ProgrammeSpec | None:
        games = await self.games_of(programme)
        if games is None:
            return None
        raw = await self.store.client.hget(ProgrammeKeys(games).programmes, programme)
        return None if raw is None else _SPEC.decode(raw)

    async def programmes(self, games: str) -> dict[str, ProgrammeSpec]:
        raw: dict[Any, Any] = await self.store.client.hgetall(ProgrammeKeys(games).programmes)
        return {p.decode(): _SPEC.decode(v) for p, v in sorted(raw.items())}

    async def stats(self, programme: str, games: str) -> dict[str, int]:
        raw: dict[Any, Any] = await self.store.client.hgetall(ProgrammeKeys(games).stats(programme))
        return {k.decode(): int(v) for k, v in raw.items()}

    async def allocation(self, programme: str, games: str) -> dict[str, int]:
        raw: dict[Any, Any] = await self.store.client.hgetall(ProgrammeKeys(games).alloc(programme))
        return {k.decode(): int(v) for k, v in sorted(raw.items())}

    async def sessions(self, games: str) -> dict[str, SessionInfo]:
        raw: dict[Any, Any] = await self.store.client.hgetall(ProgrammeKeys(games).sessions)
        return {k.decode(): _SESSION.decode(v) for k, v in sorted(raw.items())}

    async def allocate(self, programme: str, counts: dict[str, int], acting: Acting) -> Allocated:
        games = await self.games_of(programme)
        if games is None:
            return Allocated("no_programme", "", 0)
        k = ProgrammeKeys(games)
        code, item, n = await run(
            self.store, ALLOCATE, k,
            [k.programmes, k.pool, k.alloc(programme), k.stats(programme), k.reclaims,
             k.journal()],
            [programme, acting.actor, *(x for pair in counts.items() for x in pair)], acting,
            programme=programme,
        )  # fmt: skip
        return Allocated(code_of(code, AllocateCode, "allocate"), item.decode(), int(n))

    async def reclaim(self, programme: str, acting: Acting) -> Reclaimed:
        """Return the programme's unassigned tickets to the pool on its reclaim date."""
        for _ in range(3):  # 'stale': the reclaim date changed between the read and the script
            spec = await self.spec(programme)
            if spec is None:
                return Reclaimed("no_programme", 0, 0)
            k = ProgrammeKeys(spec.games)
            at = reclaim_at_us(spec.reclaim_on)
            code, n = await run(
                self.store, RECLAIM, k,
                [k.programmes, k.alloc(programme), k.pool, k.stats(programme), k.reclaims,
                 k.journal()],
                [programme, spec.reclaim_on.isoformat(), at, acting.actor], acting,
                programme=programme,
            )  # fmt: skip
            answer = Reclaimed(code_of(code, ReclaimCode, "reclaim"), int(n), at)
            if answer.code != "stale":
                return answer
        raise RuntimeError(f"programme {programme}: its reclaim date keeps changing")

    async def reclaimed(self, games: str) -> dict[str, int]:
        """Programme -> when it was reclaimed (µs)."""
        raw: dict[Any, Any] = await self.store.client.hgetall(ProgrammeKeys(games).reclaims)
        return {k.decode(): int(v) for k, v in raw.items()}

    async def levels(self, games: str) -> Levels:
        k = ProgrammeKeys(games)
        for _ in range(10):
            programmes = sorted(_text(p) for p in await self.store.client.hkeys(k.programmes))
            answer = await self.store.scripts(
                POOL_LEVELS,
                [k.loaded, k.pool, k.assigned, k.used, k.programmes,
                 *(k.alloc(p) for p in programmes)],
                programmes,
            )  # fmt: skip
            if answer[0] == b"ok":
                loaded, pool, assigned, used, *allocs = (_pairs(x) for x in answer[1:])
                return Levels(games, loaded, pool, assigned, used,
                              dict(zip(programmes, allocs, strict=True)))  # fmt: skip
        raise RuntimeError(f"the {games} programmes keep changing; audit again")
