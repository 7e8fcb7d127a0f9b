"""The retention purge (``guichet privacy purge --games G``): once a programme's
``retention_until`` is over, what it stores about people goes, in batches (purge.lua: one atomic
step and one audit record each), resumable — a run stopped half-way is run again. Counters and
the audit log stay. A programme whose date is not over is left as it is and named."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from guichet.audit.act import Act
from guichet.privacy.service import programme_ids
from guichet.programme.people import decode_programme
from guichet.programme.people_service import retention_cutoff
from guichet.refusals import code_of
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys, tag_of
from guichet.store.scripts import LuaScript

PURGE = LuaScript("guichet.privacy", "purge.lua")
SCRIPTS = (PURGE,)
BATCH = 200
PHASES = ("candidates", "tickets", "groups", "rest")
PurgeCode = Literal["purged", "no_programme", "stale", "early"]


async def lottery_ids(store: Store, k: ProgrammeKeys, programme: str) -> list[str]:
    """The programme's lottery ids, read from key names (the programme keeps no index of them).
    A SCAN with MATCH on ``lottery:<P>:*`` in the games' tag: it walks the whole keyspace (the
    pattern filters, it does not seek), O(keys) in batches of 1000 — acceptable for this ops
    command run once per programme after its retention date, not for a request's path."""
    prefix = k.lottery(programme, "x")[:-1]
    out: set[str] = set()
    async for key in store.client.scan_iter(
        match=re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*", count=1000
    ):
        lot = (key.decode() if isinstance(key, bytes) else key)[len(prefix) :]
        if lot and ":" not in lot:
            out.add(lot)
    return sorted(out)


@dataclass
class Report:
    games: str
    #: programme -> items purged (records deleted or rewritten, entries, keys)
    purged: dict[str, int] = field(default_factory=dict)
    #: programme -> why it was left (its retention date not over, or none)
    kept: dict[str, str] = field(default_factory=dict)
    batches: int = 0


async def purge(
    store: Store, games: str, act: Callable[[str, str, str], Act], batch: int = BATCH
) -> Report:
    """Purge every programme of ``games`` whose retention date is over. ``act(programme, phase,
    cursor)`` is the audit act of one batch."""
    k = ProgrammeKeys(games)
    report = Report(games=games)
    progs = await programme_ids(store, k)
    for programme in progs:
        lots = await lottery_ids(store, k, programme)
        others = [k.candidates(q) for q in progs if q != programme]
        raw = await store.client.hget(k.programmes, programme)
        until = None if raw is None else decode_programme(raw).retention_until
        if until is None:
            report.kept[programme] = "no retention date"
            continue
        keys = [k.programmes, k.candidates(programme), k.tickets(programme), k.groups(programme),
                k.leaders(programme), k.exceptions(programme), k.benefit, k.outbox,
                k.declarations, *others, *(k.ranking(programme, lot) for lot in lots),
                Act.key(tag_of(k.programmes))]  # fmt: skip
        phase, cursor, total, first = PHASES[0], "0", 0, True
        while phase != "done":
            args = [
                programme,
                until.isoformat(),
                retention_cutoff(until),
                phase,
                cursor,
                batch,
                len(others),
            ]
            # the run's first call records the act; later calls pass an empty act (audit.lua)
            this = act(programme, phase, cursor).arg() if first else b""
            first = False
            raw_code, nextp, nextc, n = await store.scripts(PURGE, keys, [*args, this])
            code: PurgeCode = code_of(raw_code, PurgeCode, "purge")
            if code != "purged":
                report.kept[programme] = f"retention until {until}" if code == "early" else code
                break
            report.batches += 1
            total += int(n)
            phase, cursor = nextp.decode(), nextc.decode()
        else:
            report.purged[programme] = total
    return report
