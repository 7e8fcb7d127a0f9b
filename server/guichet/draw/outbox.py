"""The outboxes of notices: one Redis Stream per sale (window notices) and one per games of the
State programme (ticket links, ``programme:<games>``), read by the e-mail sender through the
consumer group ``mailer``. Delivery is at-least-once: a notice stays pending until
acknowledged, and a notice pending longer than the claim bound (its reader died, or exited
without acking) is handed to the next reader (``outbox_read.lua``).

A sale's entry: account, draw, wave, starts_us, ends_us, due_us (starts minus the notice
period: when the sender should send it). A programme's entry: kind, programme, ticket, link
(with the beneficiary's code after ``#``), and the group's leader when it has one; it is due
when written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from guichet import wire
from guichet.audit import acts
from guichet.audit.act import Act
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys, SaleKeys
from guichet.store.scripts import LuaScript
from guichet.units import US_PER_S

GROUP = "mailer"
READ = LuaScript("guichet.draw", "outbox_read.lua")
TRIM = LuaScript("guichet.draw", "outbox_trim.lua")
ACK = LuaScript("guichet.draw", "outbox_ack.lua")
SCRIPTS = (READ, TRIM, ACK)
TRIM_BATCH = 1000  # ids looked at per trim step (one script call each)


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


PROGRAMME = "programme:"  # an outbox target naming a programme's games, e.g. programme:olympic


def key_of(target: str) -> str:
    """The stream of an outbox target: a sale id, or ``programme:<games>``."""
    if target.startswith(PROGRAMME):
        return ProgrammeKeys(target[len(PROGRAMME) :]).outbox
    return SaleKeys(target).outbox


def programme_notice(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, str]:
    """A programme notice as the sender reads it: its id and fields as they are."""
    return {"id": entry_id.decode(), **{k.decode(): v.decode() for k, v in fields.items()}}


def notice(entry_id: bytes, fields: dict[bytes, bytes]) -> Notice:
    f = {k.decode(): v.decode() for k, v in fields.items()}
    return Notice(
        id=entry_id.decode(),
        account=f["account"],
        draw=f["draw"],
        wave=int(f["wave"]),
        starts_at=wire.rfc3339(int(f["starts_us"]) / US_PER_S),
        ends_at=wire.rfc3339(int(f["ends_us"]) / US_PER_S),
        due_at=wire.rfc3339(int(f["due_us"]) / US_PER_S),
        due_us=int(f["due_us"]),
    )


def _group(groups: list[dict[Any, Any]]) -> dict[str, Any] | None:
    for g in groups:
        name = g.get("name")
        if (name.decode() if isinstance(name, bytes) else name) == GROUP:
            return {k if isinstance(k, str) else k.decode(): v for k, v in g.items()}
    return None


def _first_due(entries: list[Any]) -> int | None:
    """When the first entry is due: its ``due_us``, else when it was written (its id)."""
    if not entries:
        return None
    entry_id, fields = entries[0]
    due = fields.get(b"due_us")
    return int(due) if due is not None else int(_text(entry_id).split("-")[0]) * 1000


async def backlog(client: Any, target: str) -> Backlog:
    """The outbox's backlog (asyncio client), for the gauges."""
    key = key_of(target)
    length = int(await client.xlen(key))
    if length == 0:
        return Backlog(0, 0, 0, None)
    group = _group(await client.xinfo_groups(key))
    if group is None:  # no reader yet: everything is undelivered, from the first entry on
        return Backlog(length, length, 0, _first_due(await client.xrange(key, "-", "+", count=1)))
    pending = int(group.get("pending") or 0)
    undelivered = await _undelivered(client, key, group)
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


async def _undelivered(client: Any, key: str, group: dict[str, Any]) -> int:
    """The group's lag. Redis leaves it unknown after a deletion at its last delivered id
    (as :func:`trim` makes); entries added minus entries read still counts it exactly, since
    nothing after that id is ever deleted."""
    lag = group.get("lag")
    if lag is not None:
        return int(lag)
    info = await client.xinfo_stream(key)
    added = info.get("entries-added", info.get(b"entries-added"))
    read = group.get("entries-read")
    if added is not None and read is not None:
        return int(added) - int(read)
    last = _text(group["last-delivered-id"])
    return len(await client.xrange(key, f"({last}", "+"))


async def read_raw(
    store: Store, target: str, consumer: str, count: int, claim_idle_ms: int
) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Up to ``count`` entries for ``consumer`` of the mailer group (see :func:`read`)."""
    _, entries = await store.scripts(
        READ, [key_of(target)], [GROUP, consumer, count, claim_idle_ms]
    )
    return [(i, dict(zip(f[::2], f[1::2], strict=True))) for i, f in entries]


async def read(
    store: Store, sale: str, consumer: str, count: int, claim_idle_ms: int
) -> list[Notice]:
    """Up to ``count`` notices for ``consumer`` of the mailer group: first those pending for
    ``claim_idle_ms`` or longer (read by a reader that never acknowledged them), then new
    ones. They stay pending until :func:`ack`."""
    return [notice(i, f) for i, f in await read_raw(store, sale, consumer, count, claim_idle_ms)]


def object_of(target: str) -> str:
    """The audit object of an outbox act: ``sale:<S>``, or ``programme:<games>``."""
    return target if target.startswith(PROGRAMME) else f"sale:{target}"


async def ack(store: Store, target: str, ids: list[str], act: Act | None = None) -> int:
    """Acknowledge notices sent (``outbox_ack.lua``: one act, one audit record)."""
    if not ids:
        return 0
    act = act or acts.internal("outbox.ack", object_of(target))
    ks, args = acts.keys_args(act, [key_of(target)], [GROUP, *ids])
    return int(await store.scripts(ACK, ks, args))


async def trim(store: Store, target: str, act: Act | None = None) -> int:
    """Delete every notice the mailer has acknowledged (delivered and no longer pending),
    wherever it sits among pending ones: they hold account ids and are no longer needed.
    One script call per :data:`TRIM_BATCH` ids, each atomic (``outbox_trim.lua``); the first
    writes the audit record of ``act``, the later ones none (audit.lua)."""
    key, after, deleted = key_of(target), "", 0
    this: Act | None = act or acts.internal("outbox.trim", object_of(target))
    while True:
        ks, args = acts.keys_args(this, [key], [GROUP, after, TRIM_BATCH])
        gone, last = await store.scripts(TRIM, ks, args)
        this = None  # recorded by the first call
        deleted += int(gone)
        if not last:
            return deleted
        after = _text(last)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
