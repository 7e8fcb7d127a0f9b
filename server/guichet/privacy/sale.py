"""What the public sale stores about one account (GDPR art. 15): its draw entries, purchase
windows, purchases and their e-tickets (with their first scan). Plain reads across the draws'
and sales' slots; the caller records the access once with a note (note.py). Not read: the
waiting rooms' short-lived sessions, holds never confirmed (they expire), restricted strata's
member lists and the outbox's window notices (docs/privacy.md)."""

from __future__ import annotations

from typing import Any

from guichet import wire
from guichet.eticket.model import seats
from guichet.shop.service import HoldRecord
from guichet.store.client import Store
from guichet.store.keys import DRAWS_INDEX, SALES_INDEX, DrawKeys, SaleKeys
from guichet.units import US_PER_S

PHASES = ("packs", "singles")


class Entry(wire.Reply, kw_only=True):
    draw: str
    stratum: str
    registered_at: str


class Window(wire.Reply, kw_only=True):
    sale: str
    phase: str
    draw: str
    wave: str
    starts_at: str
    ends_at: str


class SaleTicket(wire.Reply, kw_only=True):
    id: str
    session: str
    category: str
    scanned: str | None = None


class Purchase(wire.Reply, kw_only=True):
    sale: str
    hold: str
    state: str
    confirmed_at: str | None = None
    tickets: list[SaleTicket]


class AccountExport(wire.Reply, kw_only=True):
    account: str
    entries: list[Entry] = []
    windows: list[Window] = []
    purchases: list[Purchase] = []


def _at(value_us: int | str) -> str:
    return wire.rfc3339(int(value_us) / US_PER_S)


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def _members(store: Store, key: str) -> list[str]:
    raw: Any = await store.client.smembers(key)
    return sorted(_text(x) for x in raw)


async def account_export(store: Store, account: str) -> AccountExport | None:
    """Everything the sale stores about ``account``, or None when nothing."""
    out = AccountExport(account=account)
    c = store.client
    for draw in await _members(store, DRAWS_INDEX):
        raw: Any = await c.hget(DrawKeys(draw).entries_of(account), account)
        if raw is not None:
            stratum, _, at = _text(raw).rpartition(":")
            out.entries.append(Entry(draw=draw, stratum=stratum, registered_at=_at(at)))
    for sale in await _members(store, SALES_INDEX):
        k = SaleKeys(sale)
        for phase in PHASES:
            raw = await c.hget(k.windows(phase), account)
            if raw is not None:
                starts, ends, draw, wave = _text(raw).split(":", 3)
                out.windows.append(Window(sale=sale, phase=phase, draw=draw, wave=wave,
                                          starts_at=_at(starts), ends_at=_at(ends)))  # fmt: skip
        for hold in await _members(store, k.bought(account)):
            raw = await c.hget(k.holds, hold)
            if raw is None:
                continue
            h = HoldRecord.decode(hold, raw)
            mine = seats(sale, hold, account, h.items)
            scans: Any = await c.hmget(k.scans, [s.id for s in mine]) if mine else []
            tickets = [SaleTicket(id=s.id, session=s.session, category=s.category,
                                  scanned=None if x is None else _text(x))
                       for s, x in zip(mine, scans, strict=True)]  # fmt: skip
            confirmed = None if h.confirmed_us is None else _at(h.confirmed_us)
            out.purchases.append(Purchase(sale=sale, hold=hold, state=h.state,
                                          confirmed_at=confirmed, tickets=tickets))  # fmt: skip
    if not (out.entries or out.windows or out.purchases):
        return None
    return out
