"""Benchmark of the State programme at scale: the demo pool and programmes, then about 500,000
candidates through every phase, each timed, with peak memory.

    python -m loadtest.programme --candidates 500000

On a private Valkey (embedded binary, AOF on as the embedded default, in a temporary folder),
through the service layer (the same Python and Lua the routes call, on uvloop; no HTTP):

1. **pool**: the demo pool (``demo_plan.pool_rows``, 401,220 tickets), the eight programmes
   (four publics x two games) and the published split allocated (``demo_plan.allocations``);
2. **lotteries**: one lottery per allocation item of each programme, created and committed
   (closes in a day);
3. **register**: ``--candidates`` synthetic candidates (names "Fictif Bench-…"), spread over the
   lotteries in proportion to their tickets x 0.8, 1.2, 1.5 or 1.5 (some items have fewer
   candidates than tickets), registered by ``People.register`` (pseudonym, name box,
   ``people_register.lua``), ``--concurrency`` calls in flight; one youth in three is a minor
   with a guardian's consent;
4. **close**: every lottery's ``closes_at`` set to Redis' now (a benchmark shortcut: the
   lotteries closed as planned);
5. **run**: each programme's candidates read once (``lottery.entries_by_lottery``), then each
   lottery ranked, signed and stored (``lottery.run``);
6. **assign**: ``designate.assign`` per lottery (batches of 200 tickets per script);
7. **withdraw**: 10 % of the assigned tickets withdrawn by their operator
   (``Tickets.withdraw``: reassigned to the next ranked candidate, or returned to the pool);
8. **reclaim**: every programme (its reclaim date is past: the games are shifted so the Olympic
   opening is ``--opens-in`` days away, 30 by default, hence the reclaim 56 days ago, and every
   session is after its eve);
9. **audit**: pool + allocated + assigned + used = loaded for every item of both games;
10. **purge**: each programme's retention date moved to yesterday (``PoolService.put``), then
   ``People.purge``; a sample of records checked to hold no name.

Per phase: wall time, rate, per-call p50/p99 where calls are individual, this process' peak RSS
(``ru_maxrss``, cumulative) and Valkey's ``used_memory_peak``. Exit 1 when the audit breaks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import uvloop

from guichet.config import Settings, load_settings
from guichet.draw import seal
from guichet.embedded import EmbeddedValkey
from guichet.programme import demo_plan, designate, identity, lottery, model, pool
from guichet.programme import people_service as ps
from guichet.programme import pool_service as pls
from guichet.programme import tickets as tk
from guichet.programme.acting import internal
from guichet.programme.people import Candidate, Consent, Guardian
from guichet.signing import Keyring
from guichet.store.client import Store, connect
from guichet.store.keys import ProgrammeKeys
from guichet.units import US_PER_S

SCRIPTS = (*pls.SCRIPTS, *ps.SCRIPTS, *lottery.SCRIPTS, *designate.SCRIPTS, *tk.SCRIPTS)
ACTOR = "central-bench"
RATIOS = (8, 12, 15, 15)  # candidates per ticket x 10, cycled over the lotteries
T = TypeVar("T")


@dataclass
class Phase:
    name: str
    seconds: float
    count: int
    unit: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    rss_mib: float = 0.0
    valkey_peak_mib: float = 0.0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Report:
    candidates: int
    pool: int
    lotteries: int
    concurrency: int
    phases: list[Phase] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    breaches: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Lot:
    programme: str
    public: model.Public
    id: str
    session: str
    category: str
    tickets: int
    candidates: int = 0

    @property
    def object(self) -> str:
        """What the lottery's acts concern, in the audit log."""
        return f"programme:{self.programme}/lottery:{self.id}"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _many(
    fn: Callable[[T], Awaitable[object]], items: Iterable[T], concurrency: int
) -> list[float]:
    """Run ``fn`` over ``items`` with ``concurrency`` calls in flight; each call's seconds."""
    it: Iterator[T] = iter(items)
    latencies: list[float] = []

    async def worker() -> None:
        for item in it:  # a shared iterator: each item is taken once
            start = time.perf_counter()
            await fn(item)
            latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


class Bench:
    def __init__(self, store: Store, settings: Settings, report: Report, opening: date) -> None:
        self.store = store
        self.settings = settings
        self.report = report
        self.shift = demo_plan.shift_to(opening)
        self.box = identity.name_box(settings.programme)
        self.people = ps.People(store, identity.pseudonym_secret(settings.programme), self.box)
        self.pools = pls.PoolService(store)
        self.seal_key = seal.seal_key(settings.draws)
        self.draw_signer = Keyring(settings.draws.signing_key_dir)
        self.tickets = tk.Tickets(store, Keyring(settings.etickets.signing_key_dir),
                                  settings.etickets, self.box)  # fmt: skip
        self.lots: list[Lot] = []
        self.games: dict[str, model.Games] = {}

    async def phase(
        self, name: str, unit: str, work: Callable[[], Awaitable[tuple[int, list[float], str]]]
    ) -> Phase:
        print(f"  {name} …", file=sys.stderr, flush=True)
        start = time.perf_counter()
        count, latencies, note = await work()
        seconds = time.perf_counter() - start
        info: dict[str, Any] = await self.store.client.info("memory")
        p = Phase(name, seconds, count, unit, rss_mib=_rss_mib(),
                  valkey_peak_mib=int(info["used_memory_peak"]) / 2**20, note=note)  # fmt: skip
        if latencies:
            p.p50_ms, p.p99_ms = _pct(latencies, 0.5), _pct(latencies, 0.99)
            p.max_ms = max(latencies) * 1000
        self.report.phases.append(p)
        print(f"  {_line(p)}", file=sys.stderr, flush=True)
        return p

    # 1 ------------------------------------------------------------------------------------------
    async def load(self, total: int) -> tuple[int, list[float], str]:
        rows = demo_plan.pool_rows(total, self.shift)
        body = {"tickets": [{"games": r.games, "session": r.session, "date": r.date,
                             "name": r.name, "category": r.category, "quantity": r.quantity}
                            for r in rows]}  # fmt: skip
        parsed = pool.parse_json(msgspec.json.encode(body))
        loaded = await self.pools.load(parsed, internal(ACTOR, "programme.pool-load", "pool"))
        assert all(a.code == "ok" for a in loaded), loaded
        for games in model.GAMES:
            for public in model.PUBLICS:
                p = demo_plan.programme_id(public, games)
                body_p = demo_plan.programme_body(public, games, self.shift)
                put = await self.pools.put(
                    p, body_p, internal(ACTOR, "programme.put", f"programme:{p}")
                )
                assert put.spec is not None, put
                self.games[p] = games
        for p, items in demo_plan.allocations(rows).items():
            counts = {model.item(s, c): q for s, c, q in items}
            got = await self.pools.allocate(
                p, counts, internal(ACTOR, "programme.allocate", f"programme:{p}")
            )
            assert got.code == "ok", got
            public = next(u for u in model.PUBLICS if demo_plan.programme_id(u, self.games[p]) == p)
            self.lots += [Lot(p, public, f"l{i:04d}", s, c, q) for i, (s, c, q) in enumerate(items)]
        return sum(r.quantity for r in rows), [], f"{len(rows)} items, 8 programmes"

    # 2 ------------------------------------------------------------------------------------------
    async def lotteries(self, candidates: int) -> tuple[int, list[float], str]:
        weights = [lot.tickets * RATIOS[i % len(RATIOS)] for i, lot in enumerate(self.lots)]
        shares = demo_plan.apportion(candidates, weights)
        self.lots = [Lot(**{**asdict(lot), "candidates": n})
                     for lot, n in zip(self.lots, shares, strict=True)]  # fmt: skip
        self.report.lotteries = len(self.lots)
        closes = datetime.now(UTC) + timedelta(days=1)

        async def one(lot: Lot) -> None:
            request = lottery.LotteryRequest(id=lot.id, session=lot.session,
                                             category=lot.category, closes_at=closes)  # fmt: skip
            by = demo_plan.operator_of(lot.public)
            await lottery.create(
                self.store,
                lot.programme,
                request,
                internal(by, "programme.lottery-create", lot.object),
            )
            await lottery.commit(
                self.store,
                self.seal_key,
                lot.programme,
                lot.id,
                internal("op", "programme.lottery-commit", lot.object),
            )

        return len(self.lots), await _many(one, self.lots, 16), "create + commit"

    # 3 ------------------------------------------------------------------------------------------
    def _candidates(self) -> Iterator[tuple[Lot, Candidate]]:
        today = datetime.now(UTC)
        consent = Consent(version="taj-2024-v1", collected_at=today, collected_by="bench")
        n = 0
        for lot in self.lots:
            for _ in range(lot.candidates):
                n += 1
                minor = lot.public == "youth" and n % 3 == 0
                born = date(2012 if minor else 1960, 1, 1) + timedelta(days=n % 2000)
                guardian = (
                    Guardian(name="Fictif Tuteur", relationship="parent", consented_at=today)
                    if minor
                    else None
                )
                yield lot, Candidate(
                    family_name="Fictif", given_names=f"Bench-{n:07d} Personne", birth_date=born,
                    lottery=lot.id, criteria=demo_plan.CRITERIA[lot.public], consent=consent,
                    guardian=guardian,
                )  # fmt: skip

    async def register(self, concurrency: int) -> tuple[int, list[float], str]:
        async def one(pair: tuple[Lot, Candidate]) -> None:
            lot, c = pair
            by = internal(demo_plan.operator_of(lot.public), "programme.register",
                          f"programme:{lot.programme}/candidate")  # fmt: skip
            await self.people.register(lot.programme, c, by)

        latencies = await _many(one, self._candidates(), concurrency)
        return len(latencies), latencies, f"People.register, {concurrency} in flight"

    # 4-5 ----------------------------------------------------------------------------------------
    async def close(self) -> tuple[int, list[float], str]:
        seconds, micros = await self.store.client.time()
        now = int(seconds) * US_PER_S + int(micros)
        for lot in self.lots:
            key = ProgrammeKeys(self.games[lot.programme]).lottery(lot.programme, lot.id)
            await self.store.client.hset(key, "closes_at", now)
        return len(self.lots), [], "closes_at := Redis now"

    async def run(self) -> tuple[int, list[float], str]:
        latencies: list[float] = []
        ranked = 0
        for p, games in self.games.items():
            start = time.perf_counter()
            entries = await lottery.entries_by_lottery(self.store, games, p)
            scan = time.perf_counter() - start
            lots = [lot for lot in self.lots if lot.programme == p]

            async def one(lot: Lot, p: str = p, entries: dict[str, list[str]] = entries) -> None:
                people = entries.get(lot.id, [])
                run = internal("op", "programme.lottery-run", lot.object)
                t = await lottery.run(self.store, self.seal_key, self.draw_signer, p, lot.id,
                                      b"bench beacon", run, people=people)  # fmt: skip
                assert t.entries == len(people) == lot.candidates, (lot, t.entries)

            latencies += await _many(one, lots, 8)
            ranked += sum(len(v) for v in entries.values())
            print(f"    {p}: {len(lots)} lotteries, candidates read in {scan:.1f} s",
                  file=sys.stderr)  # fmt: skip
        return ranked, latencies, "entries read once per programme, then each lottery"

    # 6 ------------------------------------------------------------------------------------------
    async def assign(self) -> tuple[int, list[float], str]:
        given = 0

        async def one(lot: Lot) -> None:
            nonlocal given
            by = internal("op", "programme.lottery-assign", lot.object)
            a = await designate.assign(self.store, lot.programme, lot.id, by)
            given += a.assigned

        latencies = await _many(one, self.lots, 8)
        self.report.counts["assigned"] = given
        return given, latencies, f"{len(self.lots)} designate.assign calls (per lottery)"

    # 7 ------------------------------------------------------------------------------------------
    async def withdraw(self, concurrency: int) -> tuple[int, list[float], str]:
        chosen: list[tuple[str, str]] = []
        for p, games in self.games.items():
            n = 0
            async for t, _ in self.store.client.hscan_iter(ProgrammeKeys(games).tickets(p),
                                                           count=2000):  # fmt: skip
                n += 1
                if n % 10 == 0:
                    chosen.append((p, t.decode()))
        outcomes = {"reassigned": 0, "returned": 0}

        async def one(pair: tuple[str, str]) -> None:
            w = await self.tickets.withdraw(pair[0], pair[1], tk.Caller(actor="op"))
            outcomes[w.outcome] += 1

        latencies = await _many(one, chosen, concurrency)
        self.report.counts.update({f"withdrawn_{k}": v for k, v in outcomes.items()})
        return len(chosen), latencies, ", ".join(f"{k} {v:,}" for k, v in outcomes.items())

    # 8-9 ----------------------------------------------------------------------------------------
    async def reclaim(self) -> tuple[int, list[float], str]:
        total = 0
        latencies = []
        for p in self.games:
            start = time.perf_counter()
            r = await self.pools.reclaim(p, internal(ACTOR, "programme.reclaim", f"programme:{p}"))
            latencies.append(time.perf_counter() - start)
            assert r.code == "ok", (p, r)
            total += r.tickets
        self.report.counts["reclaimed"] = total
        return total, latencies, "8 programmes; count = tickets returned to the pool"

    async def audit(self) -> tuple[int, list[float], str]:
        items = 0
        for games in model.GAMES:
            levels = await self.pools.levels(games)
            self.report.breaches += pls.audit(levels)
            items += len(levels.loaded)
            for name in ("loaded", "pool", "assigned", "used"):
                self.report.counts[f"{games}_{name}"] = sum(getattr(levels, name).values())
        return items, [], f"{len(self.report.breaches)} breaches"

    # 10 -----------------------------------------------------------------------------------------
    async def purge(self) -> tuple[int, list[float], str]:
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        erased = 0
        latencies = []
        for p, games in self.games.items():
            public = next(u for u in model.PUBLICS if demo_plan.programme_id(u, games) == p)
            body = demo_plan.programme_body(public, games, self.shift, retention_until=yesterday)
            await self.pools.put(p, body, internal(ACTOR, "programme.put", f"programme:{p}"))
            start = time.perf_counter()
            erased += await self.people.purge(p, internal(ACTOR, "programme.purge", p))
            latencies.append(time.perf_counter() - start)
            _, sample = await self.store.client.hscan(ProgrammeKeys(games).candidates(p), 0,
                                                      count=1000)  # fmt: skip
            assert isinstance(sample, dict)
            assert all(json.loads(v)["name"] is None for v in sample.values()), p
        self.report.counts["purged"] = erased
        return erased, latencies, "names erased (8 People.purge calls, HSCAN batches of 500)"


def _line(p: Phase) -> str:
    lat = "" if p.p50_ms is None else f"  p50 {p.p50_ms:.2f} ms  p99 {p.p99_ms:.2f} ms  " \
        f"max {p.max_ms:.0f} ms"  # fmt: skip
    return (f"{p.name:<10} {p.seconds:8.1f} s  {p.count:>9,} {p.unit:<12} "
            f"{p.rate:>9,.0f}/s{lat}  rss {p.rss_mib:,.0f} MiB  "
            f"valkey peak {p.valkey_peak_mib:,.0f} MiB  ({p.note})")  # fmt: skip


def markdown(r: Report) -> str:
    out = ["| phase | wall s | count | rate /s | p50 ms | p99 ms | max ms | RSS MiB "
           "| Valkey peak MiB | note |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for p in r.phases:
        f = ("" if v is None else f"{v:.2f}" for v in (p.p50_ms, p.p99_ms))
        mx = "" if p.max_ms is None else f"{p.max_ms:.0f}"
        out.append(f"| {p.name} | {p.seconds:.1f} | {p.count:,} {p.unit} | {p.rate:,.0f} | "
                   f"{' | '.join(f)} | {mx} | {p.rss_mib:,.0f} | {p.valkey_peak_mib:,.0f} "
                   f"| {p.note} |")  # fmt: skip
    return "\n".join(out)


async def bench(settings: Settings, url: str, args: argparse.Namespace) -> Report:
    report = Report(args.candidates, args.pool, 0, args.concurrency)
    store = connect(settings.redis, url=url, scripts=SCRIPTS)
    opening = datetime.now(UTC).date() + timedelta(days=args.opens_in)
    try:
        await store.scripts.load_all()
        b = Bench(store, settings, report, opening)
        await b.phase("pool", "tickets", lambda: b.load(args.pool))
        await b.phase("lotteries", "lotteries", lambda: b.lotteries(args.candidates))
        await b.phase("register", "candidates", lambda: b.register(args.concurrency))
        await b.phase("close", "lotteries", b.close)
        await b.phase("run", "entries", b.run)
        await b.phase("assign", "tickets", b.assign)
        await b.phase("withdraw", "tickets", lambda: b.withdraw(args.concurrency))
        await b.phase("reclaim", "tickets", b.reclaim)
        await b.phase("audit", "items", b.audit)
        await b.phase("purge", "names", b.purge)
    finally:
        await store.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=500_000)
    parser.add_argument("--pool", type=int, default=model.TOTAL_TICKETS,
                        help="tickets in the demo pool (401,220: the State purchase)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight")
    parser.add_argument("--opens-in", dest="opens_in", type=int, default=30,
                        help="days from today to the (shifted) Olympic opening")  # fmt: skip
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    print(f"programme benchmark: pool {args.pool:,}, {args.candidates:,} candidates",
          file=sys.stderr)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="guichet-programme-bench-") as tmp:
        workdir = Path(tmp)
        config = workdir / "guichet.toml"
        config.write_text(
            f'[draws]\nseal_key_file = "{workdir / "seal"}"\n'
            f'signing_key_dir = "{workdir / "draw-keys"}"\n'
            f'[etickets]\nsigning_key_dir = "{workdir / "eticket-keys"}"\n'
            f'[programme]\npseudonym_secret_file = "{workdir / "pseudonym-secret"}"\n'
            f'name_key_file = "{workdir / "name-key"}"\n'
            f"[redis]\nmax_connections = {max(64, args.concurrency + 8)}\n"
        )
        settings = load_settings(config, environ={})
        with EmbeddedValkey(workdir / "valkey") as server:
            report = uvloop.run(bench(settings, server.url, args))  # as the server runs
    print(markdown(report))
    print(json.dumps(report.counts, indent=1))
    if args.json:
        Path(args.json).write_bytes(msgspec.json.encode(report))
    if report.breaches:
        print("AUDIT BREACHES:\n" + "\n".join(report.breaches[:20]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
