"""Each worker's live view of its sales, refreshed from Redis about every 500 ms.

- **Availability** is served from here: the encoded body is rebuilt only when the stock moved,
  so a read costs no Redis trip; SSE subscribers get the changed items.
- **Expiry**: each refresh runs ``expire.lua`` on the head of the expiry queue, so holds past
  their time return to stock within a refresh whatever the load (the script is atomic, so all
  workers may run it).
- **Metering**: the fraction of the sale's seats left goes to the waiting rooms linked to the
  sale (``sale`` in the room spec): the pacer slows admission as stock runs down and stops at
  zero, and waiting people see ``sold_out`` (``room.model.metered_rate``). Every refresh hands
  the current level to the signal, which writes it to each linked room that does not show it
  yet — so a room linked after the stock last moved, or a worker just started, learns it
  within a refresh, not at the next sale.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from guichet import metrics, wire
from guichet.shop import model
from guichet.shop.service import Shop

log = logging.getLogger("guichet.shop")

Level = Literal["none", "few", "some", "many"]
SUBSCRIBER_QUEUE = 16


class CategoryAvailability(wire.Reply, kw_only=True):
    category: str
    seats_left: int
    level: Level


class SessionAvailability(wire.Reply, kw_only=True):
    session: str
    sport: str
    venue: str
    starts_at: str
    kind: model.SessionKind
    high_demand: bool
    categories: list[CategoryAvailability]


class Availability(wire.Reply, kw_only=True):
    """Seats left per session and category, as of ``as_of`` (refreshed about every 500 ms)."""

    sale: str
    phase: str
    as_of: str
    seats_left: int
    sold_out: bool
    sessions: list[SessionAvailability]


class Change(wire.Reply, kw_only=True):
    session: str
    category: str
    seats_left: int
    level: Level


class Changes(wire.Reply, kw_only=True):
    """An SSE ``changes`` event: the items whose seats moved since the last event."""

    sale: str
    as_of: str
    seats_left: int
    sold_out: bool
    changes: list[Change]


def level(left: int, loaded: int) -> Level:
    """A coarse level for the public: none, few (≤ 10 % and ≤ 50 seats), some, many (> 50 %)."""
    if left <= 0:
        return "none"
    if left <= max(1, min(50, loaded // 10)):
        return "few"
    return "many" if left * 2 > loaded else "some"


@dataclass
class SaleView:
    """One sale as this worker last saw it."""

    sale: str
    spec: model.SaleSpec
    sessions: dict[str, model.SessionSpec]
    loaded: dict[str, int]
    stock: dict[str, int] = field(default_factory=dict)
    body: bytes = b""
    as_of: float = 0.0
    subscribers: set[asyncio.Queue[bytes]] = field(default_factory=set)
    remaining: float | None = None  # the last stock level handed to the rooms' signal
    version: int = 0  # of the rules (``spec``): hold.lua refuses a decision made with another
    kinds: dict[str, model.SessionKind] = field(init=False)  # what counts in a pack

    def __post_init__(self) -> None:
        self.kinds = {sid: s.kind for sid, s in self.sessions.items()}

    @property
    def seats_left(self) -> int:
        return sum(max(0, v) for v in self.stock.values())

    @property
    def total(self) -> int:
        return sum(self.loaded.values())

    def availability(self) -> Availability:
        out = []
        for sid in sorted(self.sessions):
            s = self.sessions[sid]
            cats = [
                CategoryAvailability(
                    category=c.id,
                    seats_left=(left := max(0, self.stock.get(model.item_key(sid, c.id), 0))),
                    level=level(left, self.loaded.get(model.item_key(sid, c.id), 0)),
                )
                for c in s.categories
            ]
            out.append(SessionAvailability(
                session=sid, sport=s.sport, venue=s.venue,
                starts_at=wire.rfc3339(s.starts_at.timestamp()), kind=s.kind,
                high_demand=s.high_demand, categories=cats,
            ))  # fmt: skip
        left = self.seats_left
        return Availability(
            sale=self.sale,
            phase=self.spec.phase,
            as_of=wire.rfc3339(self.as_of),
            seats_left=left,
            sold_out=self.total > 0 and left == 0,
            sessions=out,
        )

    def update(self, stock: dict[str, int], now: float) -> Changes | None:
        """Take a new stock reading; the changes since the last one (None: nothing moved)."""
        moved = [f for f in set(stock) | set(self.stock) if stock.get(f) != self.stock.get(f)]
        self.as_of = now
        if not moved and self.body:
            return None
        self.stock = stock
        self.body = wire.encode(self.availability())
        changes = []
        for f in sorted(moved):
            session, _, category = f.partition(":")
            left = max(0, stock.get(f, 0))
            changes.append(Change(session=session, category=category, seats_left=left,
                                  level=level(left, self.loaded.get(f, 0))))  # fmt: skip
        left = self.seats_left
        return Changes(sale=self.sale, as_of=wire.rfc3339(now), seats_left=left,
                       sold_out=self.total > 0 and left == 0, changes=changes)  # fmt: skip

    def publish(self, changes: Changes) -> None:
        data = wire.encode(changes)
        for queue in list(self.subscribers):
            if queue.full():  # a slow reader: it reconnects and gets a full snapshot
                self.subscribers.discard(queue)
                continue
            queue.put_nowait(data)


StockSignal = Callable[[str, float], Awaitable[None]]


class Live:
    """The sales of this worker, refreshed in the background."""

    def __init__(self, shop: Shop, expire_batch: int) -> None:
        self.shop = shop
        self.expire_batch = expire_batch
        self.sales: dict[str, SaleView] = {}
        self._config_at = 0.0

    async def view(self, sale: str) -> SaleView | None:
        """The sale's view; one created by another worker is loaded on first use."""
        v = self.sales.get(sale)
        if v is None:
            v = await self._load(sale)
            if v is not None:
                await self._refresh(v, None)
        return v

    async def _load(self, sale: str) -> SaleView | None:
        rules = await self.shop.rules(sale)
        if rules is None:
            return None
        spec, version = rules
        levels = await self.shop.levels(sale)
        sessions = await self.shop.sessions(sale)
        old = self.sales.get(sale)
        if old is not None and old.version > version:  # a reload overtook this slower read
            return old
        v = SaleView(sale, spec, sessions, levels.loaded, version=version)
        if old is not None:
            v.subscribers, v.remaining, v.stock = old.subscribers, old.remaining, old.stock
            same = (old.spec, old.sessions, old.loaded) == (spec, sessions, levels.loaded)
            v.body, v.as_of = (old.body, old.as_of) if same else (b"", old.as_of)
        self.sales[sale] = v
        return v

    async def reload(self, sale: str) -> SaleView | None:
        """After a change of rules or catalogue: this worker at once; the others at their next
        refresh (the version of the rules) or within 5 s (catalogue) — but a hold is decided
        with the current rules on every worker (``hold.lua`` checks their version)."""
        v = await self._load(sale)
        if v is not None:
            v.body = b""
            await self._refresh(v, None)
        return v

    async def current(self, v: SaleView) -> SaleView:
        """``v``, or the sale re-read if its rules changed since (one HGET)."""
        if await self.shop.version(v.sale) == v.version:
            return v
        return await self.reload(v.sale) or v

    async def _refresh(self, v: SaleView, signal: StockSignal | None) -> None:
        expired = await self.shop.expire(v.sale, self.expire_batch)
        if expired:
            metrics.SHOP_EXPIRIES.labels(v.sale).inc(expired)
        changes = v.update(await self.shop.stock(v.sale), time.time())
        if changes is not None:
            if changes.changes:
                v.publish(changes)
            metrics.shop_levels(v.sale, v.stock, v.sessions)
        if signal is not None and v.total:  # every round: the rooms that lack it get it
            v.remaining = round(v.seats_left / v.total, 4)
            await signal(v.sale, v.remaining)

    async def refresh_all(self, signal: StockSignal) -> None:
        """One round of the background refresh (``background.Periodic``)."""
        if time.monotonic() - self._config_at > 5:  # new sales, rules, catalogue
            self._config_at = time.monotonic()
            for sale in await self.shop.ids():
                await self._load(sale)
        for v in list(self.sales.values()):
            if await self.shop.version(v.sale) != v.version:  # new rules: views follow at once
                v = await self._load(v.sale) or v
            await self._refresh(v, signal)
