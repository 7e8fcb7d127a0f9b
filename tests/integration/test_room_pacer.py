"""The pacer and the room scripts against a real Valkey, with several simulated workers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from guichet.app import SCRIPTS
from guichet.config import RoomsConfig, Settings
from guichet.room.model import RoomPatch, RoomSpec, queue_order
from guichet.room.pacer import Pacer
from guichet.room.service import Rooms, Runtime
from guichet.room.tickets import Ticket
from guichet.store.client import Store, connect

ROOMS_CFG = RoomsConfig(
    tick_interval_s=0.05,
    ready_grace_s=60,
    join_per_ip_per_min=10_000_000,
    join_ip_burst=1_000_000,
)


def spec(opens_in_s: float = -1, **changes: object) -> RoomSpec:
    now = datetime.now(UTC)
    base = RoomSpec(
        opens_at=now + timedelta(seconds=opens_in_s),
        closes_at=now + timedelta(hours=2),
        rate_per_s=20,
        max_active=1_000_000,
        audience="shop",
        target_url="https://shop.example/",
        paused=True,
    )
    return msgspec.structs.replace(base, **changes)


@contextlib.asynccontextmanager
async def workers(settings: Settings, count: int) -> AsyncIterator[list[Rooms]]:
    """``count`` independent workers (own connection, own snapshot) running the pacer loop."""
    stores: list[Store] = []
    rooms: list[Rooms] = []
    for _ in range(count):
        store = connect(settings.redis, scripts=SCRIPTS)
        await store.scripts.load_all()
        stores.append(store)
        rooms.append(Rooms(store, ROOMS_CFG))
    pacers = [Pacer(r) for r in rooms]
    for pacer in pacers:
        pacer.start()
    try:
        yield rooms
    finally:
        for pacer in pacers:
            await pacer.stop()
        for store in stores:
            await store.close()


async def join_many(rooms: Rooms, rt: Runtime, count: int, prefix: str = "acc") -> list[str]:
    results = await asyncio.gather(
        *(rooms.join(rt, f"{prefix}-{i}", "10.0.0.1") for i in range(count))
    )
    assert {code for code, _, _ in results} == {"ok"}
    return [tid for _, tid, _ in results]


async def until_serving(rooms: Rooms, rt: Runtime, at_least: int) -> None:
    """Tick until the serving counter reaches ``at_least`` (bounded: 5 s)."""
    async with asyncio.timeout(5):
        while True:
            await rooms.tick(rt)
            assert rt.counters is not None
            if rt.counters.serving >= at_least:
                return
            await asyncio.sleep(0.01)


async def serving_now(rooms: Rooms, rt: Runtime) -> tuple[float, int]:
    """(Redis time, serving counter) read by one extra tick."""
    await rooms.tick(rt)
    assert rt.counters is not None
    return rt.counters.now, rt.counters.serving


async def test_three_workers_pace_at_the_configured_rate_without_double_advance(
    store: Store, settings: Settings
) -> None:
    """Every worker runs the tick; together they must still call `rate` people per second."""
    observer = Rooms(store, ROOMS_CFG)
    assert await observer.configure("r", "put", spec(rate_per_s=20)) == "created"
    rt = await observer.runtime("r")
    await join_many(observer, rt, 400)
    async with workers(settings, 3):
        await observer.configure("r", "patch", RoomPatch(paused=False))
        t0, s0 = await serving_now(observer, rt)
        await asyncio.sleep(2.0)  # measuring a rate: time must pass
        t1, s1 = await serving_now(observer, rt)
    expected = 20 * (t1 - t0)
    # One tick's credit of slack either side; three times the rate would be ~120, not ~40.
    assert expected - 3 <= s1 - s0 <= expected + 3, (s1 - s0, expected)
    assert rt.counters is not None
    assert 14 <= rt.counters.rate <= 26  # measured rate tracks the real one


async def test_live_rate_change_applies_within_a_second(store: Store, settings: Settings) -> None:
    observer = Rooms(store, ROOMS_CFG)
    await observer.configure("r", "put", spec(rate_per_s=2, paused=False))
    rt = await observer.runtime("r")
    await join_many(observer, rt, 2_000)
    async with workers(settings, 2):
        await observer.configure("r", "patch", RoomPatch(rate_per_s=400))
        t0, s0 = await serving_now(observer, rt)
        await asyncio.sleep(1.0)
        t1, s1 = await serving_now(observer, rt)
    assert s1 - s0 >= 400 * (t1 - t0) * 0.7, (s1 - s0, t1 - t0)


async def test_pause_holds_the_counter_and_resume_moves_it(
    store: Store, settings: Settings
) -> None:
    observer = Rooms(store, ROOMS_CFG)
    await observer.configure("r", "put", spec(rate_per_s=100, paused=True))
    rt = await observer.runtime("r")
    await join_many(observer, rt, 500)
    async with workers(settings, 2):
        _, s0 = await serving_now(observer, rt)
        await asyncio.sleep(0.5)
        _, s1 = await serving_now(observer, rt)
        assert s0 == s1 == 0
        await observer.configure("r", "patch", RoomPatch(paused=False))
        await asyncio.sleep(0.5)
        _, s2 = await serving_now(observer, rt)
    assert s2 >= 25
    # No hoarded credit from the paused time: at most half a second's worth plus one tick.
    assert s2 <= 100 * 0.5 + 100 * 0.2 + 5


async def test_active_sessions_never_exceed_max_under_concurrent_admits(
    store: Store, settings: Settings
) -> None:
    observer = Rooms(store, ROOMS_CFG)
    await observer.configure("r", "put", spec(rate_per_s=1000, max_active=7, paused=False))
    rt = await observer.runtime("r")
    tids = await join_many(observer, rt, 120)
    tickets = [Ticket("r", f"acc-{i}", tid, 1e12) for i, tid in enumerate(tids)]
    seen_active: list[int] = []
    admitted: set[str] = set()

    async def try_admit(ticket: Ticket) -> None:
        for _ in range(40):
            code, _, _ = await observer.admit(rt, ticket, ticket.index)
            if code in ("ok", "again"):
                admitted.add(ticket.account)
                return
            await asyncio.sleep(0.01)

    done = asyncio.Event()

    async def sample() -> None:
        # Stopped by an event, not cancelled: a cancelled in-flight command would leave a
        # Cluster connection mid-reply.
        while not done.is_set():
            seen_active.append(await store.client.zcard(rt.keys.active))
            await asyncio.sleep(0.005)

    async with workers(settings, 3):
        sampler = asyncio.create_task(sample())
        await asyncio.gather(*(try_admit(t) for t in tickets))
        done.set()
        await sampler
        _, serving = await serving_now(observer, rt)
    assert len(admitted) == 7
    assert max(seen_active) <= 7
    assert await store.client.zcard(rt.keys.active) == 7
    # The pacer called no more people than could be admitted at once.
    assert serving <= 7


async def test_leave_frees_a_slot_for_the_next_in_line(store: Store) -> None:
    rooms = Rooms(store, ROOMS_CFG)
    await rooms.configure("r", "put", spec(rate_per_s=1000, max_active=2, paused=False))
    rt = await rooms.runtime("r")
    tids = await join_many(rooms, rt, 3)
    t = [Ticket("r", f"acc-{i}", tid, 1e12) for i, tid in enumerate(tids)]
    await until_serving(rooms, rt, 2)
    assert [(await rooms.admit(rt, x, x.index))[0] for x in t[:2]] == ["ok", "ok"]
    assert (await rooms.admit(rt, t[2], 2))[0] == "not_ready"  # not called: room is full
    assert (await rooms.leave(rt, t[0])) == ("ok", True)
    await until_serving(rooms, rt, 3)
    assert (await rooms.admit(rt, t[2], 2))[0] == "ok"
    assert (await rooms.admit(rt, t[0], 0))[0] == "used"  # one ticket, one session
    assert (await rooms.leave(rt, t[0]))[0] == "again"


async def test_idle_sessions_are_reaped_from_the_head_only(store: Store) -> None:
    rooms = Rooms(store, ROOMS_CFG)
    await rooms.configure("r", "put", spec(rate_per_s=1000, paused=False))
    rt = await rooms.runtime("r")
    tids = await join_many(rooms, rt, 3)
    await until_serving(rooms, rt, 3)
    for i, tid in enumerate(tids):
        assert (await rooms.admit(rt, Ticket("r", f"acc-{i}", tid, 1e12), i))[0] == "ok"
    # Simulate idleness: two sessions' expiry in the past (Redis TIME moves on its own).
    await store.client.zadd(rt.keys.active, {"acc-0": 1, "acc-1": 2})
    await rooms.tick(rt)
    assert rt.counters is not None
    assert rt.counters.active == 1
    assert rt.counters.expired_total == 2
    assert await store.client.zrange(rt.keys.active, 0, -1) == [b"acc-2"]
    again = await rooms.admit(rt, Ticket("r", "acc-0", tids[0], 1e12), 0)
    assert again[0] == "used"
    assert (await rooms.heartbeat(rt, "acc-0"))[0] == "gone"
    code, expires = await rooms.heartbeat(rt, "acc-2")
    assert code == "ok"
    assert expires > rt.counters.now + 800  # idle_timeout_s = 900 from now


async def test_ready_tickets_lapse_after_the_grace_period(store: Store) -> None:
    rooms = Rooms(store, ROOMS_CFG)
    await rooms.configure("r", "put", spec(rate_per_s=1000, paused=False))
    rt = await rooms.runtime("r")
    tids = await join_many(rooms, rt, 5)
    await until_serving(rooms, rt, 5)
    assert rt.counters is not None
    assert rt.counters.serving == 5
    # Pretend numbers 0-2 were called more than ready_grace_s ago (one old checkpoint).
    old = int((rt.counters.now - ROOMS_CFG.ready_grace_s - 5) * 1_000_000)
    await store.client.zadd(rt.keys.calls, {f"{old}:3": old})
    await rooms.tick(rt)
    assert rt.counters.floor == 3
    lapsed = Ticket("r", "acc-1", tids[1], 1e12)
    fresh = Ticket("r", "acc-4", tids[4], 1e12)
    assert (await rooms.admit(rt, lapsed, 1))[0] == "expired"
    assert rt.status(lapsed).state == "expired"
    assert (await rooms.admit(rt, fresh, 4))[0] == "ok"


async def test_prequeue_is_shuffled_at_opening_from_the_kept_seed(store: Store) -> None:
    rooms = Rooms(store, ROOMS_CFG)
    future = spec(opens_in_s=3600, rate_per_s=1000, paused=False)
    await rooms.configure("r", "put", future)
    rt = await rooms.runtime("r")
    pre = await join_many(rooms, rt, 40, prefix="early")
    assert sorted(int(t.split(":")[1]) for t in pre) == list(range(40))
    assert all(t.startswith("p:") for t in pre)
    status = rt.status(Ticket("r", "early-0", pre[0], 1e12))
    assert status.state == "prequeue"
    assert status.eta_s is not None
    assert 3500 < status.eta_s <= 3600
    # Ops bring the opening forward: the next tick opens the room and freezes the pre-queue.
    await rooms.configure(
        "r",
        "put",
        msgspec.structs.replace(future, opens_at=datetime.now(UTC) - timedelta(seconds=1)),
    )
    late = await join_many(rooms, rt, 10, prefix="late")
    assert [t.split(":")[:2] for t in late]
    assert all(t.startswith("n:") for t in late)
    assert sorted(int(t.split(":")[1]) for t in late) == list(range(40, 50))
    stats = rooms.stats(rt)
    assert stats.shuffle_seed is not None
    assert stats.prequeue == 40
    seed = bytes.fromhex(stats.shuffle_seed)
    expected = await asyncio.to_thread(queue_order, seed, 40, "shuffle-then-fifo")
    for _ in range(100):  # the order is computed off-loop on first sight of the opening
        if rt.order is not None:
            break
        await asyncio.sleep(0.01)
    numbers = [rt.number_of(Ticket("r", f"early-{i}", t, 1e12)) for i, t in enumerate(pre)]
    assert numbers == expected.tolist()
    assert numbers != list(range(40))  # shuffled, not join order (1 in 40! to fail)
    assert await store.client.hget(rt.keys.state, "seed") == stats.shuffle_seed.encode()


async def test_stock_signal_meters_and_stops_the_pacer(store: Store, settings: Settings) -> None:
    observer = Rooms(store, ROOMS_CFG)
    await observer.configure("r", "put", spec(rate_per_s=100, paused=False))
    rt = await observer.runtime("r")
    tids = await join_many(observer, rt, 1_000)
    await observer.set_stock("r", 0.02)  # 2 % left: a tenth of the rate
    assert rt.counters is not None
    assert rt.counters.effective_rate == pytest.approx(10)
    await observer.set_stock("r", 0.0)
    _, s0 = await serving_now(observer, rt)
    async with workers(settings, 2):
        await asyncio.sleep(0.5)
    _, s1 = await serving_now(observer, rt)
    assert s1 == s0
    assert rt.counters.sold_out
    waiting = Ticket("r", "acc-999", tids[999], 1e12)
    assert rt.status(waiting).state == "sold_out"
