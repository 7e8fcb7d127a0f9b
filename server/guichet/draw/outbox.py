"""The outbox of window notices: one Redis Stream per sale, read by the e-mail sender through
the consumer group ``mailer`` (at-least-once: a notice stays pending until acknowledged).

Each entry: account, draw, wave, starts_us, ends_us, due_us (starts minus the notice period:
when the sender should send it).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from guichet import wire
from guichet.store.keys import SaleKeys

GROUP = "mailer"
_US = 1_000_000


@dataclass(frozen=True)
class Notice:
    id: str
    account: str
    draw: str
    wave: int
    starts_at: str
    ends_at: str
    due_at: str
    due_us: int


@dataclass(frozen=True)
class Backlog:
    length: int  # entries in the stream
    undelivered: int  # not yet read by the group
    pending: int  # read, not acknowledged
    oldest_due_us: int | None  # oldest notice not acknowledged, by due time


def notice(entry_id: bytes, fields: dict[bytes, bytes]) -> Notice:
    f = {k.decode(): v.decode() for k, v in fields.items()}
    return Notice(
        id=entry_id.decode(),
        account=f["account"],
        draw=f["draw"],
        wave=int(f["wave"]),
        starts_at=wire.rfc3339(int(f["starts_us"]) / _US),
        ends_at=wire.rfc3339(int(f["ends_us"]) / _US),
        due_at=wire.rfc3339(int(f["due_us"]) / _US),
        due_us=int(f["due_us"]),
    )


def _group(groups: list[dict[Any, Any]]) -> dict[str, Any] | None:
    for g in groups:
        name = g.get("name")
        if (name.decode() if isinstance(name, bytes) else name) == GROUP:
            return {k if isinstance(k, str) else k.decode(): v for k, v in g.items()}
    return None


def _first_due(entries: list[Any]) -> int | None:
    return int(entries[0][1][b"due_us"]) if entries else None


async def backlog(client: Any, sale: str) -> Backlog:
    """The outbox's backlog (asyncio client), for the gauges."""
    key = SaleKeys(sale).outbox
    length = int(await client.xlen(key))
    if length == 0:
        return Backlog(0, 0, 0, None)
    group = _group(await client.xinfo_groups(key))
    if group is None:
        return Backlog(length, length, 0, None)
    pending = int(group.get("pending") or 0)
    undelivered = int(group.get("lag") or 0)
    dues = []
    if pending:
        summary = await client.xpending(key, GROUP)
        dues.append(_first_due(await client.xrange(key, summary["min"], summary["min"])))
    if undelivered:
        last = group["last-delivered-id"]
        last = last.decode() if isinstance(last, bytes) else last
        dues.append(_first_due(await client.xrange(key, f"({last}", "+", count=1)))
    known = [d for d in dues if d is not None]
    return Backlog(length, undelivered, pending, min(known) if known else None)


async def read(client: Any, sale: str, consumer: str, count: int) -> list[Notice]:
    """Up to ``count`` new notices for ``consumer`` of the mailer group (they stay pending
    until :func:`ack`)."""
    key = SaleKeys(sale).outbox
    with contextlib.suppress(ResponseError):  # BUSYGROUP: it exists
        await client.xgroup_create(key, GROUP, id="0", mkstream=True)
    replies = await client.xreadgroup(GROUP, consumer, {key: ">"}, count=count)
    return [notice(i, f) for _, entries in replies for i, f in entries]


async def ack(client: Any, sale: str, ids: list[str]) -> int:
    return int(await client.xack(SaleKeys(sale).outbox, GROUP, *ids)) if ids else 0


async def trim(client: Any, sale: str) -> int:
    """Delete the notices the mailer has acknowledged (every entry before the oldest one
    still pending or not yet delivered): they hold account ids and are no longer needed."""
    key = SaleKeys(sale).outbox
    group = _group(await client.xinfo_groups(key)) if await client.exists(key) else None
    if group is None:
        return 0
    keep: list[str] = []
    if int(group.get("pending") or 0):
        summary = await client.xpending(key, GROUP)
        keep.append(_text(summary["min"]))
    last = _text(group["last-delivered-id"])
    after = await client.xrange(key, f"({last}", "+", count=1)
    if after:
        keep.append(_text(after[0][0]))
    if not keep:  # everything delivered and acknowledged
        keep.append(_next_id(last))
    oldest = min(keep, key=lambda i: tuple(int(x) for x in i.split("-")))
    return int(await client.xtrim(key, minid=oldest, approximate=False))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _next_id(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"
