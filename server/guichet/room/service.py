"""The waiting room's Redis side and each worker's snapshot of every room.

One :class:`Rooms` per worker. Its pacer (``pacer.py``) runs :meth:`Rooms.tick` for every room
about every 200 ms (all workers do; the script makes that safe), which keeps the counters as
the room's snapshot, from which status polls and SSE streams are answered without Redis. Join,
admit, leave and heartbeat are one script call each.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import msgspec
import numpy as np

from guichet import metrics
from guichet.audit import acts
from guichet.audit.act import Act
from guichet.config import RoomsConfig
from guichet.refusals import code_of
from guichet.room import lottery
from guichet.room.challenge import Challenge
from guichet.room.model import (
    MODES,
    Counters,
    Joined,
    Mode,
    RoomDefinition,
    RoomPatch,
    RoomSpec,
    RoomStats,
    State,
    Status,
    eta_s,
    poll_after_ms,
    queue_order,
    state_of,
)
from guichet.room.outcomes import (
    AdmitCode,
    Admitting,
    Beating,
    ConfigureCode,
    HeartbeatCode,
    JoinCode,
    Joining,
    LeaveCode,
    Leaving,
    Tick,
    tick_of,
)
from guichet.room.progress import Mark, Marks
from guichet.room.tickets import Ticket
from guichet.store import keys
from guichet.store.client import Store
from guichet.store.scripts import LuaScript
from guichet.units import US_PER_S
from guichet.wire import rfc3339

log = logging.getLogger("guichet.room")

JOIN = LuaScript("guichet.room", "join.lua")
TICK = LuaScript("guichet.room", "tick.lua")
ADMIT = LuaScript("guichet.room", "admit.lua")
LEAVE = LuaScript("guichet.room", "leave.lua")
HEARTBEAT = LuaScript("guichet.room", "heartbeat.lua")
CONFIGURE = LuaScript("guichet.room", "configure.lua")
STOCK = LuaScript("guichet.room", "stock.lua")
SCRIPTS = (JOIN, TICK, ADMIT, LEAVE, HEARTBEAT, CONFIGURE, STOCK)


#: How long an ended session is remembered (stream and workers), s: past the longest
#: admission-token lifetime (model.TokenTtl, 3600 s), every token of the session has expired.
ENDED_RETENTION_S = 3600 + 60
#: Most ended sessions one tick reads (a worker that starts behind catches up at this pace).
ENDED_BATCH = 5000


class UnknownRoom(Exception):
    pass


def _stream_id(raw: str) -> tuple[int, int]:
    ms, _, seq = raw.partition("-")
    return int(ms), int(seq or 0)


def _take_ended(rt: Runtime, ended: list[str], now: float) -> None:
    """Record the sessions a tick read from the ended stream; forget those older than
    :data:`ENDED_RETENTION_S` (oldest first: the dict keeps stream order)."""
    for entry, account in zip(ended[::2], ended[1::2], strict=True):
        rt.ended[account] = _stream_id(entry)[0] / 1000
    last = ended[-2]
    if _stream_id(last) > _stream_id(rt.ended_cursor):  # concurrent ticks: never step back
        rt.ended_cursor = last
    horizon = now - ENDED_RETENTION_S
    while rt.ended:
        oldest = next(iter(rt.ended))
        if rt.ended[oldest] >= horizon:
            break
        del rt.ended[oldest]


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * US_PER_S)


def spec_fields(spec: RoomSpec | RoomPatch) -> list[str]:
    """A spec (or the set fields of a patch) as the cfg hash's field/value pairs."""
    out: list[str] = []
    for name in spec.__struct_fields__:
        value = getattr(spec, name)
        if value is None and isinstance(spec, RoomPatch):
            continue
        if isinstance(value, datetime):
            out += [name, rfc3339(value.timestamp()), name.replace("_at", "_us"), str(_us(value))]
        elif isinstance(value, bool):
            out += [name, "1" if value else "0"]
        else:
            out += [name, "" if value is None else str(value)]
    return out


def spec_from_hash(raw: dict[bytes, bytes]) -> RoomSpec:
    data: dict[str, Any] = {}
    for name in RoomSpec.__struct_fields__:
        value = raw.get(name.encode())
        if value is None:
            continue
        text = value.decode()
        if name in ("paused", "listed"):
            data[name] = text == "1"
        elif name in ("sale", "draw", "name"):
            data[name] = text or None
        else:
            data[name] = text
    return msgspec.convert(data, RoomSpec, strict=False)


def _mode(raw: str) -> Mode:
    return raw if raw in MODES else "shuffle-then-fifo"


def _counters(t: Tick) -> Counters:
    return Counters(
        now=t.now / US_PER_S,
        opens_at=t.opens / US_PER_S,
        closes_at=t.closes / US_PER_S,
        opened=t.opened_us > 0,
        prequeue=t.pre,
        issued=t.issued,
        serving=t.serving,
        floor=t.floor,
        active=t.active,
        admitted_total=t.admitted,
        expired_total=t.expired,
        rate=t.measured_rate,
        effective_rate=t.effective_rate,
        sold_out=bool(t.stock) and float(t.stock) <= 0,
        stock_remaining=float(t.stock) if t.stock else None,
        paused=t.paused,
        seed=t.seed or None,
        opened_at=t.opened_us / US_PER_S if t.opened_us else None,
        mode=_mode(t.mode),
        open_mode=_mode(t.open_mode) if t.open_mode else None,
        random_seed=t.rseed or None,
    )


def seed_commitment(seed: str) -> str:
    """SHA-256 (hex) of the random draw's seed text: published while the draw runs."""
    return hashlib.sha256(seed.encode()).hexdigest()


def _replay(rt: Runtime, t: Tick) -> None:
    """Replay the random draw's batches this tick returned (lottery.py), in log order."""
    if not t.rseed:
        return
    if rt.draw is None:
        rt.draw = lottery.Draw(t.rseed)
        # The commitment only: the seed itself is revealed when the room closes (stats).
        log.info("random draw seed", extra={"room": rt.id, "seed_sha256": seed_commitment(t.rseed)})
    for index, entry in enumerate(t.draw, start=t.draw_from):
        if index == rt.draw.applied:  # concurrent ticks: each batch once, in order
            rt.draw.apply(*lottery.parse_batch(entry))
    rt.draw_len = max(rt.draw_len, t.draw_len)


@dataclass
class Runtime:
    """One room as this worker knows it: spec, latest counters, pre-queue numbers."""

    id: str
    keys: keys.RoomKeys
    spec: RoomSpec
    version: bytes = b""
    counters: Counters | None = None
    fetched: float = 0.0  # time.monotonic() when the counters arrived
    order: np.ndarray | None = None
    order_task: asyncio.Task[None] | None = None
    updated: asyncio.Event = field(default_factory=asyncio.Event)
    marks: Marks | None = None  # signs the `seen` of each status
    #: Accounts whose admitted session ended (left, reaped) -> when (UNIX s), oldest first,
    #: read from the room's ended stream at each tick; the guard refuses their tokens.
    ended: dict[str, float] = field(default_factory=dict)
    ended_cursor: str = "0-0"  # the last stream id read
    #: random mode's draw replayed from the draw log (None until the room drew a seed)
    draw: lottery.Draw | None = None
    draw_len: int = 0  # entries in the draw log, as of the latest tick
    _window: tuple[RoomSpec | None, tuple[str, str]] = (None, ("", ""))
    _mark: tuple[Mark, str] | None = None  # the last one signed (the same for every poll)

    def _signed(self, mark: Mark) -> str | None:
        if self.marks is None:
            return None
        if self._mark is None or self._mark[0] != mark:
            self._mark = (mark, self.marks.sign(self.id, mark))
        return self._mark[1]

    @property
    def window(self) -> tuple[str, str]:
        """``opens_at`` and ``closes_at`` as RFC 3339, formatted once per spec (hot path)."""
        if self._window[0] is not self.spec:
            spec = self.spec
            self._window = (spec, (rfc3339(spec.opens_at.timestamp()),
                                   rfc3339(spec.closes_at.timestamp())))  # fmt: skip
        return self._window[1]

    def now(self) -> float:
        """Redis time, extrapolated from the snapshot with this process's monotonic clock."""
        if self.counters is None:
            return time.time()
        return self.counters.now + (time.monotonic() - self.fetched)

    def number_of(self, ticket: Ticket) -> int | None:
        if not ticket.prequeue:
            return ticket.index
        if self.counters is None or not self.counters.opened or self.order is None:
            return None
        if ticket.index >= len(self.order):
            return None
        return int(self.order[ticket.index])

    def status(
        self, ticket: Ticket, joined: tuple[str, bool] | None = None, seen: Mark | None = None
    ) -> Status:
        """Where ``ticket`` stands, from the snapshot or from what the client was last shown
        (``seen``, verified), whichever is further; with ``joined`` (the token and whether it
        is new) a :class:`Joined` reply."""
        c = self.counters
        if (
            c is not None
            and seen is not None
            and (seen.serving > c.serving or seen.floor > c.floor)
        ):
            c = msgspec.structs.replace(
                c, serving=max(c.serving, seen.serving), floor=max(c.floor, seen.floor)
            )
        opens, closes = self.window
        if c is None:  # Rooms.runtime() waits for a snapshot: only a defensive answer
            if joined is not None:  # a join always answers its ticket
                return Joined(
                    room=self.id, state="waiting", serving=0, admission_rate=0.0,
                    poll_after_ms=1000, opens_at=opens, closes_at=closes, ticket=joined[0],
                    created=joined[1], mode=self.spec.mode,
                )  # fmt: skip
            return Status(
                room=self.id, state="waiting", serving=0, admission_rate=0.0,
                poll_after_ms=1000, opens_at=opens, closes_at=closes, mode=self.spec.mode,
            )  # fmt: skip
        now = self.now()
        number = self.number_of(ticket)
        # Serving counts positions: the random draw swaps them (lottery.py). A worker whose
        # replay of the draw log is behind only trusts positions it has replayed.
        position, c_own = number, c
        if (d := self.draw) is not None and number is not None:
            position = d.position(number)
            assert self.counters is not None
            behind = d.applied < self.draw_len
            known = d.serving if behind else self.counters.serving
            if (behind or c.mode == "random") and known < c.serving:
                c = msgspec.structs.replace(c, serving=known)
        state: State
        if ticket.admitted_until is not None:
            # Heartbeats may extend the session past the ticket's `adm`: the protected site
            # owns the session from here, so the queue only says "admitted".
            state = "admitted"
        elif ticket.prequeue and c.opened and number is None:
            state = "waiting"  # shuffle result not computed here yet: a fraction of a second
        else:
            state = state_of(position, ticket.index, c, now)
        c = c_own
        if (state == "waiting" and c.mode == "passthrough" and number is not None
                and c.effective_rate > 0):  # fmt: skip
            state = "ready"  # every issued number is called at once (admit.lua agrees)
        in_draw = None
        if c.mode == "random" and c.opened:  # counting this ticket if newer than the snapshot
            in_draw = max(0, max(c.issued, (position if position is not None else -1) + 1)
                          - c.serving)  # fmt: skip
        ahead: int | None = None
        eta: int | None = None
        if state == "waiting" and position is not None and c.mode != "random":
            ahead = max(0, position - c.serving)
            eta = eta_s(ahead + 1, c.rate)  # called once the ahead people and I are called
        elif state == "prequeue":
            eta = max(0, int(c.opens_at - now + 0.999))
        elif state == "ready":
            ahead, eta = 0, 0
        hint = (
            poll_after_ms(ahead, c.rate)
            if state == "waiting"
            else (min(30_000, max(1_000, (eta or 0) * 500)) if state == "prequeue" else 2_000)
        )
        place = None if ahead is None else ahead + 1 if state == "waiting" else 0
        rate = round(c.rate, 3)
        mark = self._signed(Mark(c.serving, c.floor))
        if joined is not None:
            return Joined(
                room=self.id, state=state, number=number, position=place, ahead=ahead,
                eta_s=eta, serving=c.serving, admission_rate=rate, poll_after_ms=hint,
                opens_at=opens, closes_at=closes, seen=mark, ticket=joined[0],
                created=joined[1], mode=c.mode, in_draw=in_draw,
            )  # fmt: skip
        return Status(
            room=self.id, state=state, number=number, position=place, ahead=ahead,
            eta_s=eta, serving=c.serving, admission_rate=rate, poll_after_ms=hint,
            opens_at=opens, closes_at=closes, seen=mark, mode=c.mode, in_draw=in_draw,
        )  # fmt: skip


class Rooms:
    """Every room, as one worker sees it, and the script calls that change them."""

    def __init__(self, store: Store, cfg: RoomsConfig, marks: Marks | None = None) -> None:
        self.store = store
        self.cfg = cfg
        self.marks = marks
        self._rooms: dict[str, Runtime] = {}
        self._links: dict[tuple[str, str], list[Runtime]] | None = None  # see linked()
        self._loading: dict[str, asyncio.Future[Runtime]] = {}
        self._grace_us = cfg.ready_grace_s * US_PER_S
        self._window_us = cfg.rate_window_s * US_PER_S
        self._ip = (round(60 * US_PER_S / cfg.join_per_ip_per_min), cfg.join_ip_burst)
        self._account = (
            round(60 * US_PER_S / cfg.join_per_account_per_min),
            cfg.join_account_burst,
        )

    # --- registry ------------------------------------------------------------------------

    def get(self, room: str) -> Runtime | None:
        return self._rooms.get(room)

    def __contains__(self, room: object) -> bool:
        return room in self._rooms

    async def runtime(self, room: str) -> Runtime:
        """The room's runtime with a snapshot; a room created by another worker (or found in
        the index by the pacer but not ticked yet) is loaded and ticked on first use, once for
        all the requests waiting for it: none is answered from a runtime without counters."""
        rt = self._rooms.get(room)
        if rt is not None and rt.counters is not None:
            return rt
        task = self._loading.get(room)
        if task is None:
            task = self._loading[room] = asyncio.ensure_future(self._first_snapshot(room))
            task.add_done_callback(self._loaded)
        return await asyncio.shield(task)

    def _loaded(self, task: asyncio.Future[Runtime]) -> None:
        for room, pending in list(self._loading.items()):
            if pending is task:
                del self._loading[room]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter got it already

    async def _first_snapshot(self, room: str) -> Runtime:
        rt = self._rooms.get(room) or await self._load(room)
        if rt is None:
            raise UnknownRoom(room)
        if rt.counters is None:
            await self.tick(rt)
        if rt.counters is None or room not in self._rooms:  # deleted meanwhile
            raise UnknownRoom(room)
        return rt

    async def _load(self, room: str) -> Runtime | None:
        k = keys.RoomKeys(room)
        raw: dict[bytes, bytes] = await self.store.client.hgetall(k.cfg)  # type: ignore[assignment]
        if not raw:
            return None
        spec = spec_from_hash(raw)
        self._links = None
        rt = self._rooms.get(room)
        if rt is None:
            rt = self._rooms[room] = Runtime(room, k, spec, marks=self.marks)
            log.info("room loaded", extra={"room": room})  # this worker knows it from now on
        else:
            rt.spec = spec
        rt.version = raw.get(b"version", b"")
        return rt

    def ids(self) -> list[str]:
        return sorted(self._rooms)

    def linked(self, kind: Literal["sale", "draw"], target: str) -> list[Runtime]:
        """The rooms whose spec links them to sale or draw ``target`` (room id order); the
        map is rebuilt only after a spec was loaded or a room dropped."""
        if self._links is None:
            links: dict[tuple[str, str], list[Runtime]] = {}
            for room in self.ids():
                rt = self._rooms[room]
                for name, value in (("sale", rt.spec.sale), ("draw", rt.spec.draw)):
                    if value is not None:
                        links.setdefault((name, value), []).append(rt)
            self._links = links
        return self._links.get((kind, target), [])

    # --- admin ---------------------------------------------------------------------------

    async def configure(
        self, room: str, op: str, spec: RoomSpec | RoomPatch, act: Act | None = None
    ) -> ConfigureCode:
        """Create/replace/patch a room (see configure.lua for the codes); a change writes the
        audit record of ``act`` (default: an act of the service, ``room.<op>``)."""
        k = keys.RoomKeys(room)
        act = act or acts.internal(f"room.{op}", f"room:{room}")
        ks, args = acts.keys_args(act, [k.cfg], [op, *spec_fields(spec)])
        raw, *rest = await self.store.scripts(CONFIGURE, ks, args)
        code: ConfigureCode = code_of(raw, ConfigureCode, "configure")
        if code in ("created", "updated"):
            await self.store.client.sadd(keys.ROOMS_INDEX, room)
            await self._load(room)
            previous = rest[0].decode() if rest else ""
            if previous and spec.mode is not None and spec.mode != previous:  # PUT or PATCH
                metrics.ROOM_MODE_SWITCHES.labels(room, spec.mode).inc()
                log.info("room mode switched", extra={"room": room, "mode": spec.mode,
                                                      "previous": previous})  # fmt: skip
            await self.tick(self._rooms[room])
        return code

    async def ensure_defined(self, definitions: tuple[RoomDefinition, ...]) -> None:
        """Create the config file's rooms that do not exist yet (live changes are kept)."""
        for d in definitions:
            spec = msgspec.convert({f: getattr(d, f) for f in RoomSpec.__struct_fields__}, RoomSpec)
            code = await self.configure(d.id, "create", spec)
            if code == "exists":
                await self.store.client.sadd(keys.ROOMS_INDEX, d.id)
            log.info("room from config", extra={"room": d.id, "outcome": code})

    async def set_stock(self, room: str, remaining: float) -> None:
        """The linked sale's stock signal (0..1 left); the pacer meters admission by it. The
        shop sends it on every change of its stock: a signal, not an act (no record)."""
        rt = await self.runtime(room)
        await self.store.client.hset(rt.keys.state, "stock", f"{remaining:.6f}")
        await self.tick(rt)

    async def put_stock(self, room: str, remaining: float, act: Act) -> None:
        """The stock signal given by an admin (``PUT …/stock``): an act, with its record."""
        rt = await self.runtime(room)
        ks, args = acts.keys_args(act, [rt.keys.cfg, rt.keys.state], [f"{remaining:.6f}"])
        (code,) = await self.store.scripts(STOCK, ks, args)
        if code == b"unknown":
            raise UnknownRoom(room)
        await self.tick(rt)

    def stats(self, rt: Runtime) -> RoomStats:
        c = rt.counters
        assert c is not None
        now = rt.now()
        phase: Literal["prequeue", "open", "closed"] = (
            "closed" if now >= c.closes_at else "open" if c.opened else "prequeue"
        )
        return RoomStats(
            id=rt.id,
            spec=rt.spec,
            phase=phase,
            serving=c.serving,
            issued=c.issued,
            prequeue=c.prequeue,
            waiting=max(0, c.issued - c.serving) if c.opened else 0,
            active=c.active,
            admitted_total=c.admitted_total,
            expired_total=c.expired_total,
            admission_rate=round(c.rate, 3),
            effective_rate=round(c.effective_rate, 3),
            stock_remaining=c.stock_remaining,
            sold_out=c.sold_out,
            shuffle_seed=c.seed if c.opened else None,
            opened_at=rfc3339(c.opened_at) if c.opened_at else None,
            random_seed=c.random_seed if phase == "closed" else None,
            random_seed_sha256=seed_commitment(c.random_seed) if c.random_seed else None,
        )

    # --- pacer ---------------------------------------------------------------------------

    async def tick(self, rt: Runtime) -> None:
        """Run the pacer script once for ``rt`` and take its counters as the snapshot."""
        k = rt.keys
        reply = await self.store.scripts(
            TICK,
            [k.cfg, k.state, k.active, k.sessions, k.calls, k.admitted_numbers, k.ended,
             k.draw_numbers, k.draw_positions, k.draw_log],
            [
                secrets.token_hex(32), self._grace_us, self._window_us, self.cfg.reap_batch,
                rt.ended_cursor, ENDED_BATCH, ENDED_RETENTION_S * 1000,
                rt.draw.applied if rt.draw is not None else 0, secrets.token_hex(32),
            ],
        )  # fmt: skip
        tick = tick_of(reply)
        if tick is None:
            self._rooms.pop(rt.id, None)
            self._links = None
            rt.updated.set()
            return
        if tick.ended:
            _take_ended(rt, tick.ended, tick.now / US_PER_S)
        _replay(rt, tick)
        counters = _counters(tick)
        if tick.version.encode() != rt.version:
            await self._load(rt.id)
        if tick.opened_now:
            log.info(
                "room opened: pre-queue frozen",
                extra={
                    "room": rt.id,
                    "prequeue": counters.prequeue,
                    "seed": counters.seed,
                    "mode": counters.open_mode,
                },
            )
        if rt.counters is not None and counters.mode != rt.counters.mode:
            log.info(  # this worker's tick applies it (the switch itself is logged once)
                "room mode applied",
                extra={"room": rt.id, "mode": counters.mode, "previous": rt.counters.mode},
            )
        if tick.reaped:
            metrics.ROOM_EXPIRED.labels(rt.id).inc(tick.reaped)
        if rt.counters is not None and counters.now < rt.counters.now:
            return  # an older tick's reply overtaken by a newer one: never step back
        rt.counters, rt.fetched = counters, time.monotonic()
        if counters.opened and counters.prequeue and rt.order is None and rt.order_task is None:
            rt.order_task = asyncio.create_task(self._compute_order(rt, counters))
        rt.updated.set()
        rt.updated = asyncio.Event()

    async def _compute_order(self, rt: Runtime, c: Counters) -> None:
        assert c.seed is not None
        # The mode in force at opening (state 'open_mode'), never the live one: a switch
        # after opening must not change an order any worker already computed.
        rt.order = await asyncio.to_thread(
            queue_order, bytes.fromhex(c.seed), c.prequeue, c.open_mode or rt.spec.mode
        )

    async def refresh_index(self) -> None:
        """Load the rooms of the index this worker does not know yet (made by another)."""
        members = await self.store.client.smembers(keys.ROOMS_INDEX)
        for raw in members:
            room = raw.decode() if isinstance(raw, bytes) else raw
            if room not in self._rooms:
                await self._load(room)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop any shuffle still being computed; never wait forever."""
        tasks = [rt.order_task for rt in self._rooms.values() if rt.order_task]
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        if pending:
            log.warning("room tasks did not stop in time", extra={"pending": len(pending)})

    # --- public calls --------------------------------------------------------------------

    @staticmethod
    def _seed(rt: Runtime) -> str:
        """A fresh shuffle seed while the room may still open (used only by the call that
        opens it); once this worker has seen it open, none is needed."""
        return "-" if rt.counters is not None and rt.counters.opened else secrets.token_hex(32)

    async def join(
        self, rt: Runtime, account: str, ip: str, challenge: Challenge | None = None
    ) -> Joining:
        """A place in the queue for ``account`` (see join.lua for the codes); ``challenge``,
        a verified proof of work, is spent ('replayed' if it was already)."""
        k = rt.keys
        nonce, expires_ms = ("", "") if challenge is None else (
            challenge.nonce, str(challenge.expires_at * 1000))  # fmt: skip
        code, tid, opened_now, retry_us = await self.store.scripts(
            JOIN,
            [k.cfg, k.state, k.tickets, k.join_limit("ip", ip), k.join_limit("acct", account),
             k.challenge_used(nonce)],
            [account, self._seed(rt), *self._ip, *self._account, expires_ms],
        )  # fmt: skip
        if int(opened_now):
            log.info("room opened by a join", extra={"room": rt.id})
            with contextlib.suppress(Exception):
                await self.tick(rt)
        return Joining(code_of(code, JoinCode, "join"), tid.decode(), int(retry_us) / US_PER_S)

    async def admit(self, rt: Runtime, ticket: Ticket, number: int) -> Admitting:
        """A session for a called ticket (see admit.lua for the codes)."""
        k = rt.keys
        code, admitted_us, expires_us, _ = await self.store.scripts(
            ADMIT,
            [k.cfg, k.state, k.tickets, k.active, k.sessions, k.admitted_numbers, k.calls,
             k.draw_positions],
            [ticket.account, ticket.tid, number, self._grace_us],
        )  # fmt: skip
        code = code_of(code, AdmitCode, "admit")
        return Admitting(code, int(admitted_us) / US_PER_S, int(expires_us) / US_PER_S)

    async def leave(self, rt: Runtime, ticket: Ticket) -> Leaving:
        """Give up the ticket's place or end its session (see leave.lua for the codes)."""
        k = rt.keys
        code, freed = await self.store.scripts(
            LEAVE,
            [k.tickets, k.active, k.sessions, k.ended],
            [ticket.account, ticket.tid, ENDED_RETENTION_S * 1000],
        )
        return Leaving(code_of(code, LeaveCode, "leave"), bool(int(freed)))

    async def heartbeat(self, rt: Runtime, account: str) -> Beating:
        """Push an admitted session's idle expiry (see heartbeat.lua for the codes)."""
        code, expires_us = await self.store.scripts(
            HEARTBEAT, [rt.keys.cfg, rt.keys.active], [account]
        )
        return Beating(code_of(code, HeartbeatCode, "heartbeat"), int(expires_us) / US_PER_S)
