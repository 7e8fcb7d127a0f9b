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
class WaveState:
    sale: str
    ranked: int
    cursor: int
    waves: int
    assigned: int
    buyers: int
    tickets: int
    pending: tuple[int, int, int, int] | None  # (wave, target, starts µs, ends µs)


def state(client: sync.SyncClient, draw: str) -> tuple[model.DrawSpec, WaveState]:
    cfg: list[Any] = client.hmget(DrawKeys(draw).cfg, ["spec", "ranked"])
    raw_spec, ranked = cfg
    if raw_spec is None:
        raise RunError(f"no draw {draw!r}")
    spec = msgspec.json.decode(raw_spec, type=model.DrawSpec)
    if spec.sale is None:
        raise RunError(f"draw {draw!r} names no sale: set `sale` to give windows")
    if ranked is None:
        raise RunError(f"draw {draw!r} has not run yet: `guichet draw run` first")
    fields = ["cursor", "waves", "assigned", "buyers", "tickets", "pending"]
    found: list[Any] = client.hmget(SaleKeys(spec.sale).waves(draw), fields)
    raw = dict(zip(fields, found, strict=True))
    pending = None
    if raw["pending"] is not None:
        n, target, starts, ends = (int(x) for x in raw["pending"].split(b":"))
        pending = (n, target, starts, ends)
    return spec, WaveState(
        sale=spec.sale,
        ranked=int(ranked),
        cursor=int(raw["cursor"] or 0),
        waves=int(raw["waves"] or 0),
        assigned=int(raw["assigned"] or 0),
        buyers=int(raw["buyers"] or 0),
        tickets=int(raw["tickets"] or 0),
        pending=pending,
    )


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
    """The wave size from the sale's remaining stock (``model.wave_size``)."""
    return model.wave_size(remaining_tickets, s.assigned, s.buyers, s.tickets)


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
) -> Wave:
    """Release the next ``count`` ranks (or finish a wave left pending by a killed release,
    whatever the arguments). With ``stratum``, the wave stays within that stratum's ranks (e.g.
    days reserved to the priority group): it ends where the stratum ends."""
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
    while cursor < target:
        ids = ranked_ids(client, draw, cursor, min(batch, target - cursor), size)
        code, new_cursor, a, k, _detail = sync.call(
            client, WAVE, keys, [number, cursor, target, *fixed, *ids]
        )
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
        cursor, assigned, skipped = int(new_cursor), assigned + int(a), skipped + int(k)
        if progress:
            progress(cursor - first, target - first)
    return Wave(number, starts_us, ends_us, first, target, assigned, skipped, resumed)
