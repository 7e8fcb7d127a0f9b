"""Queueing modes against a real Valkey with simulated workers: the pre-queue order is the
one of the mode at opening, tick.lua's random draw is the one lottery.py replays, and a worker
whose replay is behind never says a number was called."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from guichet.room import lottery, service
from guichet.room.model import RoomPatch, queue_order
from guichet.room.service import Rooms
from guichet.room.tickets import Ticket
from guichet.store.client import Store
from tests.integration.test_room_pacer import ROOMS_CFG, join_many, spec, until_serving


async def test_a_switch_after_opening_never_changes_the_prequeue_order(store: Store) -> None:
    first = Rooms(store, ROOMS_CFG)
    await first.configure("r", "put", spec(opens_in_s=3600, mode="shuffle-then-fifo"))
    rt = await first.runtime("r")
    pre = await join_many(first, rt, 40, prefix="early")
    await first.configure("r", "put", spec(opens_in_s=-1, mode="shuffle-then-fifo"))
    await first.tick(rt)  # opens it
    assert await store.client.hget(rt.keys.state, "open_mode") == b"shuffle-then-fifo"
    await first.configure("r", "patch", RoomPatch(mode="fifo"))
    # A worker meeting the room only now computes the order of the mode at opening.
    late = Rooms(store, ROOMS_CFG)
    rt2 = await late.runtime("r")
    assert rt2.spec.mode == "fifo"
    assert rt2.counters is not None
    assert rt2.counters.seed is not None
    seed = bytes.fromhex(rt2.counters.seed)
    order = await asyncio.to_thread(queue_order, seed, 40, "shuffle-then-fifo")
    expected = order.tolist()
    assert rt2.order_task is not None  # started at its first tick, off the loop
    await asyncio.wait_for(rt2.order_task, 5)
    numbers = [rt2.number_of(Ticket("r", f"early-{i}", t, 1e12)) for i, t in enumerate(pre)]
    assert numbers == expected
    assert numbers != list(range(40))


async def draw_truth(store: Store, rooms: Rooms, room: str) -> tuple[dict[int, int], list[str]]:
    rt = rooms.get(room)
    assert rt is not None
    raw = await store.client.hgetall(rt.keys.draw_numbers)
    entries: list[bytes] = await store.client.lrange(rt.keys.draw_log, 0, -1)  # type: ignore[assignment]
    log = [e.decode() for e in entries]
    return {int(k): int(v) for k, v in raw.items()}, log


async def test_the_scripts_draw_is_the_one_python_replays(store: Store) -> None:
    rooms = Rooms(store, ROOMS_CFG)
    await rooms.configure("r", "put", spec(mode="random", rate_per_s=50, paused=False))
    rt = await rooms.runtime("r")
    await join_many(rooms, rt, 200)
    await until_serving(rooms, rt, 120)
    await join_many(rooms, rt, 100, prefix="more")  # arrivals mid-draw
    await until_serving(rooms, rt, 300)
    swaps, log = await draw_truth(store, rooms, "r")
    assert len(log) >= 5  # drawn over several ticks
    assert rt.counters is not None
    assert rt.counters.random_seed is not None
    replay = lottery.Draw(rt.counters.random_seed)
    for entry in log:
        replay.apply(*lottery.parse_batch(entry))
    assert {p: replay.number_at(p) for p in range(300) if replay.number_at(p) != p} == swaps
    assert rt.draw is not None
    assert [rt.draw.number_at(p) for p in range(300)] == [replay.number_at(p) for p in range(300)]
    by_number = await store.client.hgetall(rt.keys.draw_positions)
    assert {int(v): int(k) for k, v in by_number.items()} == swaps


async def test_a_worker_behind_in_the_replay_never_says_called_too_early(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rooms = Rooms(store, ROOMS_CFG)
    await rooms.configure("r", "put", spec(mode="random", rate_per_s=40, paused=False))
    rt = await rooms.runtime("r")
    tids = await join_many(rooms, rt, 200)
    await until_serving(rooms, rt, 150)
    await rooms.configure("r", "patch", RoomPatch(paused=True))
    await rooms.tick(rt)
    assert rt.counters is not None
    serving = rt.counters.serving
    assert rt.draw is not None
    truth = rt.draw
    monkeypatch.setattr(service, "ENDED_BATCH", 1)  # one batch of the log per tick
    behind = Rooms(store, ROOMS_CFG)
    rt2 = await behind.runtime("r")
    assert rt2.draw is not None
    assert rt2.draw.applied == 1 < rt2.draw_len
    premature = 0
    while rt2.draw.applied < rt2.draw_len:
        for i, tid in enumerate(tids):
            status = rt2.status(Ticket("r", f"acc-{i}", tid, 1e12))
            called = truth.position(i) < serving
            if status.state == "ready":
                assert called, (i, status)
            premature += called and status.state != "ready"
        await behind.tick(rt2)
    assert premature > 0  # it did hold back while behind
    for i, tid in enumerate(tids):  # caught up: the same answers as the worker that drew
        ticket = Ticket("r", f"acc-{i}", tid, 1e12)
        assert rt2.status(ticket).state == rt.status(ticket).state


async def test_a_rejection_stops_the_grace_of_those_already_called(store: Store) -> None:
    """Numbers called two minutes ago, a second before ops switched the room to reject: the
    rejection stopped their grace (60 s), so once it is lifted they are admitted, not lapsed."""
    rooms = Rooms(store, ROOMS_CFG)
    await rooms.configure("r", "put", spec(mode="fifo", rate_per_s=50, paused=False))
    rt = await rooms.runtime("r")
    tids = await join_many(rooms, rt, 3)
    await until_serving(rooms, rt, 3)
    await rooms.configure("r", "patch", RoomPatch(mode="reject"))  # ticks: the period opens
    since = int(await store.client.hget(rt.keys.state, "reject_since") or 0)
    assert since > 0
    # Move the story two minutes back: calls at since - 121 s, rejecting since since - 120 s.
    shift = 121_000_000
    calls: list[tuple[bytes, float]] = await store.client.zrange(  # type: ignore[assignment]
        rt.keys.calls, 0, -1, withscores=True
    )
    await store.client.delete(rt.keys.calls)
    await store.client.zadd(rt.keys.calls, {m: score - shift for m, score in calls})
    await store.client.hset(rt.keys.state, "reject_since", since - shift + 1_000_000)
    tickets = [Ticket("r", f"acc-{i}", tid, 1e12) for i, tid in enumerate(tids)]
    code, _, _ = await rooms.admit(rt, tickets[0], 0)
    assert code == "rejecting"  # nobody is admitted while rejecting
    await rooms.tick(rt)
    assert rt.counters is not None
    assert rt.counters.floor == 0  # the clock stood still: nobody lapsed
    assert rt.status(tickets[1]).state == "ready"

    await rooms.configure("r", "patch", RoomPatch(mode="fifo"))  # lifted: the clock runs on
    assert await store.client.hget(rt.keys.state, "reject_since") is None
    codes = [(await rooms.admit(rt, t, n))[0] for n, t in enumerate(tickets)]
    assert codes == ["ok", "ok", "ok"]


async def test_passthrough_calls_no_one_while_paused_or_sold_out(store: Store) -> None:
    rooms = Rooms(store, ROOMS_CFG)
    await rooms.configure("r", "put", spec(mode="passthrough", paused=True))
    rt = await rooms.runtime("r")
    tids = await join_many(rooms, rt, 5)
    ticket = Ticket("r", "acc-0", tids[0], 1e12)
    for _ in range(3):
        await rooms.tick(rt)
        assert rt.counters is not None
        assert rt.counters.serving == 0
    assert rt.status(ticket).state == "waiting"
    assert (await rooms.admit(rt, ticket, 0))[0] == "not_ready"

    await rooms.configure("r", "patch", RoomPatch(paused=False))  # ticks: all called
    assert rt.counters is not None
    assert rt.counters.serving == 5
    await rooms.set_stock("r", 0.0)  # sold out: a newcomer waits, as in any mode
    late = await join_many(rooms, rt, 1, prefix="late")
    await rooms.tick(rt)
    assert rt.counters.serving == 5
    late_ticket = Ticket("r", "late-0", late[0], 1e12)
    assert rt.status(late_ticket).state == "sold_out"
    assert (await rooms.admit(rt, late_ticket, 5))[0] == "not_ready"


async def test_a_room_opened_before_open_mode_existed_gets_it_from_its_mode(store: Store) -> None:
    rooms = Rooms(store, ROOMS_CFG)
    await rooms.configure("r", "put", spec(mode="fifo"))
    rt = await rooms.runtime("r")
    await store.client.hdel(rt.keys.state, "open_mode")  # as a room opened by the old code
    await rooms.tick(rt)
    assert await store.client.hget(rt.keys.state, "open_mode") == b"fifo"
    await rooms.configure("r", "patch", RoomPatch(mode="shuffle-then-fifo"))
    assert await store.client.hget(rt.keys.state, "open_mode") == b"fifo"  # set once


async def test_the_draw_seed_owes_nothing_to_the_published_shuffle_seed(store: Store) -> None:
    """A room put in random mode and opened by the same tick: the shuffle seed (published at
    opening) and the draw's seed (revealed at the close) are independent values."""
    rooms = Rooms(store, ROOMS_CFG)
    await rooms.configure("r", "put", spec(mode="random"))
    rt = await rooms.runtime("r")
    state: dict[bytes, bytes] = await store.client.hgetall(rt.keys.state)  # type: ignore[assignment]
    shuffle, draw = state[b"seed"].decode(), state[b"rseed"].decode()
    assert len(draw) == 64
    assert draw != shuffle
    assert draw != hashlib.sha1(f"r{shuffle}".encode(), usedforsecurity=False).hexdigest()
