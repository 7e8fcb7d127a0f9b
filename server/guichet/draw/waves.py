"""``guichet draw release-wave``: give the next ranked entrants their purchase windows.

A wave is N consecutive ranks from the cursor (strata come first by construction of the
ranking). It is released in batches through ``wave.lua``, which records the wave as pending
on its first batch and completes it on its last, so a killed release resumes the same wave
(same window) from the cursor, and a batch never runs twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, assert_never

import msgspec

from guichet import wire
from guichet.audit import acts
from guichet.audit.act import Act
from guichet.draw import model
from guichet.draw.refusals import WaveCode
from guichet.draw.run import RunError, chunk_size, ranked_ids
from guichet.refusals import code_of
from guichet.shop.model import SaleSpec, outside_period
from guichet.store import sync
from guichet.store.keys import DrawKeys, SaleKeys
from guichet.store.scripts import LuaScript
from guichet.units import US_PER_S

WAVE = LuaScript("guichet.draw", "wave.lua")


@dataclass(frozen=True)
class Wave:
    number: int
    starts_us: int
    ends_us: int
    first_rank: int  # 0-based, inclusive
    target: int  # cursor at the end of the wave
    assigned: int  # windows given by this call
    skipped: int  # entrants who already had a window for the sale (from another draw)
    resumed: bool


@dataclass(frozen=True)
class WaveRecord:
    """One released wave and what its windows gave: windows, buyers (accounts whose first
    purchase of the phase it was) and tickets, as the shop's confirms recorded them."""

    number: int
    starts_us: int
    ends_us: int
    windows: int
    buyers: int
    tickets: int

    @property
    def conversion(self) -> float | None:
        """Buyers per window given (None before any window)."""
        return self.buyers / self.windows if self.windows else None

    @property
    def tickets_per_window(self) -> float | None:
        return self.tickets / self.windows if self.windows else None


@dataclass(frozen=True)
class WaveState:
    sale: str
    ranked: int
    cursor: int
    waves: int
    assigned: int
    buyers: int
    tickets: int
    pending: tuple[int, int, int, int] | None  # (wave, target, starts µs, ends µs)
    #: Every wave released (the pending one too), in order.
    records: tuple[WaveRecord, ...] = ()
    #: Windows, buyers and tickets of the waves whose windows have all ended at ``now_us``:
    #: what sizing may learn from (a wave still open would understate what a window sells).
    observed: tuple[int, int, int] = (0, 0, 0)
    now_us: int = 0


def state(
    client: sync.SyncClient, draw: str, *, now_us: int | None = None
) -> tuple[model.DrawSpec, WaveState]:
    """The draw's wave state and what its waves sold; ``now_us`` (default: Redis TIME) says
    which waves have ended."""
    cfg: list[Any] = client.hmget(DrawKeys(draw).cfg, ["spec", "ranked"])
    raw_spec, ranked = cfg
    if raw_spec is None:
        raise RunError(f"no draw {draw!r}")
    spec = msgspec.json.decode(raw_spec, type=model.DrawSpec)
    if spec.sale is None:
        raise RunError(f"draw {draw!r} names no sale: set `sale` to give windows")
    if ranked is None:
        raise RunError(f"draw {draw!r} has not run yet: `guichet draw run` first")
    sk = SaleKeys(spec.sale)
    fields = ["cursor", "waves", "assigned", "pending"]
    found: list[Any] = client.hmget(sk.waves(draw), fields)
    raw = dict(zip(fields, found, strict=True))
    pending = None
    if raw["pending"] is not None:
        n, target, starts, ends = (int(x) for x in raw["pending"].split(b":"))
        pending = (n, target, starts, ends)
    released = int(raw["waves"] or 0)
    records = _records(client, sk, draw, released, pending)
    if now_us is None:
        seconds, micros = client.time()
        now_us = int(seconds) * US_PER_S + int(micros)
    ended = [r for r in records if r.ends_us <= now_us and r.number <= released]
    observed = (sum(r.windows for r in ended), sum(r.buyers for r in ended),
                sum(r.tickets for r in ended))  # fmt: skip
    return spec, WaveState(
        sale=spec.sale,
        ranked=int(ranked),
        cursor=int(raw["cursor"] or 0),
        waves=released,
        assigned=int(raw["assigned"] or 0),
        buyers=sum(r.buyers for r in records),
        tickets=sum(r.tickets for r in records),
        pending=pending,
        records=records,
        observed=observed,
        now_us=now_us,
    )


def _records(
    client: sync.SyncClient,
    sk: SaleKeys,
    draw: str,
    released: int,
    pending: tuple[int, int, int, int] | None,
) -> tuple[WaveRecord, ...]:
    """Each wave's window (``w<n>``: starts:ends:target; the pending one's from ``pending``),
    windows given (``w<n>:assigned``) and purchases (``purchases``: ``<draw>:<n>:b|t``)."""
    numbers = list(range(1, released + 1)) + ([pending[0]] if pending else [])
    if not numbers:
        return ()
    wave_fields = [f for n in numbers for f in (f"w{n}", f"w{n}:assigned")]
    bought_fields = [f for n in numbers for f in (f"{draw}:{n}:b", f"{draw}:{n}:t")]
    pipe = client.pipeline(transaction=False)
    pipe.hmget(sk.waves(draw), wave_fields)
    pipe.hmget(sk.purchases, bought_fields)
    waves_raw, bought = pipe.execute()
    records = []
    for i, n in enumerate(numbers):
        window, windows = waves_raw[2 * i], waves_raw[2 * i + 1]
        if window is not None:
            starts, ends, _target = (int(x) for x in window.split(b":"))
        elif pending is not None and n == pending[0]:
            starts, ends = pending[2], pending[3]
        else:
            continue
        records.append(WaveRecord(n, starts, ends, int(windows or 0), int(bought[2 * i] or 0),
                                  int(bought[2 * i + 1] or 0)))  # fmt: skip
    return tuple(records)


def stock_left(client: sync.SyncClient, sale: str) -> int:
    """Tickets available in the sale now (its ``stock`` hash: not held, not sold)."""
    values: list[Any] = client.hvals(SaleKeys(sale).stock)
    return sum(max(0, int(v)) for v in values)


def stratum_ranks(client: sync.SyncClient, draw: str, stratum: str) -> tuple[int, int]:
    """[first, end) 0-based ranks of ``stratum`` (strata rank in order, per the transcript)."""
    raw: Any = client.hget(DrawKeys(draw).cfg, "transcript")
    if raw is None:
        raise RunError(f"draw {draw!r} has not run yet")
    t = msgspec.json.decode(raw, type=model.Transcript)
    if stratum not in t.strata:
        raise RunError(f"draw {draw!r} has no stratum {stratum!r} (strata: {', '.join(t.strata)})")
    first = 0
    for name in t.strata:
        if name == stratum:
            return first, first + t.entries_by_stratum.get(name, 0)
        first += t.entries_by_stratum.get(name, 0)
    raise AssertionError("unreachable")


def check_period(client: sync.SyncClient, sale: str, starts_us: int, ends_us: int) -> None:
    """A wave's windows must fall inside the sale's purchase period (refused, naming it)."""
    raw: Any = client.hget(SaleKeys(sale).cfg, "spec")
    if raw is None:
        return
    spec = msgspec.json.decode(raw, type=SaleSpec)
    if outside_period(spec, starts_us, ends_us):
        raise RunError(
            f"the wave's windows ({wire.rfc3339(starts_us / US_PER_S)} to "
            f"{wire.rfc3339(ends_us / US_PER_S)}) do not fall inside sale {sale}'s purchase "
            f"period ({spec.period_text()})"
        )


def size_from_stock(s: WaveState, remaining_tickets: int) -> int:
    """The wave size from the sale's remaining stock and what the windows of the waves that
    have ended sold (``model.wave_size``)."""
    windows, buyers, tickets = s.observed
    return model.wave_size(remaining_tickets, windows, buyers, tickets)


def release(
    client: sync.SyncClient,
    draw: str,
    *,
    count: int,
    starts_us: int,
    allow_short_notice: bool = False,
    stratum: str | None = None,
    batch: int = 1000,
    progress: Callable[[int, int], None] | None = None,
    act: Act | None = None,
) -> Wave:
    """Release the next ``count`` ranks (or finish a wave left pending by a killed release,
    whatever the arguments). With ``stratum``, the wave stays within that stratum's ranks (e.g.
    days reserved to the priority group): it ends where the stratum ends. The batch that
    first batch writes the audit record of ``act`` (in the sale's chain; audit.lua), the
    later ones none: a release stopped half-way has its record, a resumed one its own."""
    spec, s = state(client, draw)
    sk = SaleKeys(s.sale)
    if s.pending is not None:
        number, target, starts_us, ends_us = s.pending
        resumed = True
    else:
        if count <= 0:
            raise RunError("a wave needs --count of at least 1")
        number, target = s.waves + 1, min(s.cursor + count, s.ranked)
        if stratum is not None:
            first_rank, end = stratum_ranks(client, draw, stratum)
            if not first_rank <= s.cursor < end:
                raise RunError(
                    f"the next rank ({s.cursor + 1}) is not in stratum {stratum!r} "
                    f"(ranks {first_rank + 1}-{end})"
                )
            target = min(target, end)
        if target == s.cursor:
            raise RunError("every ranked entrant already has a window")
        ends_us = starts_us + spec.window_s * US_PER_S
        check_period(client, s.sale, starts_us, ends_us)
        resumed = False
    first, cursor, assigned, skipped = s.cursor, s.cursor, 0, 0
    keys = [sk.waves(draw), sk.windows(spec.phase), sk.outbox]
    fixed = [starts_us, ends_us, spec.notice_s * US_PER_S, "1" if allow_short_notice else "0", draw]
    size = chunk_size(client, draw)
    this: Act | None = act or acts.internal("draw.wave", f"draw:{draw}")
    while cursor < target:
        ids = ranked_ids(client, draw, cursor, min(batch, target - cursor), size)
        ks, args = acts.keys_args(this, keys, [number, cursor, target, *fixed, *ids])
        code, new_cursor, a, k, _detail = sync.call(client, WAVE, ks, args)
        released: WaveCode = code_of(code, WaveCode, "wave")
        match released:
            case "ok" | "done":
                pass
            case "short_notice":
                raise RunError(
                    f"windows must be announced {spec.notice_s} s ahead: --start is too soon "
                    "(or pass --allow-short-notice)"
                )
            case "moved" | "pending" | "stale":
                raise RunError(f"another release moved the wave state ({released}); run it again")
            case _:
                assert_never(released)
        this = None  # recorded by the first batch
        cursor, assigned, skipped = int(new_cursor), assigned + int(a), skipped + int(k)
        if progress:
            progress(cursor - first, target - first)
    return Wave(number, starts_us, ends_us, first, target, assigned, skipped, resumed)
