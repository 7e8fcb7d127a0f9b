"""Join's rate limits (the GCRA fragment, room/lua_include/gcra.lua) through the real join
path: exact counts under concurrency, shared by all callers, time from Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from guichet.config import RoomsConfig
from guichet.room.model import RoomSpec
from guichet.room.service import Rooms, Runtime
from guichet.store.client import Store

LIMITS = RoomsConfig(
    join_per_ip_per_min=1,
    join_ip_burst=25,
    join_per_account_per_min=1,
    join_account_burst=5,
)


async def room(store: Store, cfg: RoomsConfig = LIMITS) -> tuple[Rooms, Runtime]:
    rooms = Rooms(store, cfg)
    now = datetime.now(UTC)
    spec = RoomSpec(
        opens_at=now - timedelta(seconds=1),
        closes_at=now + timedelta(hours=1),
        rate_per_s=1,
        max_active=10,
        audience="shop",
        target_url="https://shop.example/",
    )
    assert await rooms.configure("r", "put", spec) == "created"
    return rooms, await rooms.runtime("r")


async def test_ip_burst_is_exact_under_concurrency(store: Store) -> None:
    """200 simultaneous joins of different accounts from one address, burst 25 at 1/min:
    exactly 25 get a place; the others are told to retry within the minute."""
    rooms, rt = await room(store)
    replies = await asyncio.gather(*(rooms.join(rt, f"acc-{i}", "10.0.0.1") for i in range(200)))
    codes = [code for code, _, _ in replies]
    assert codes.count("ok") == 25
    assert codes.count("limited_ip") == 175
    assert all(0 < retry <= 60 for code, _, retry in replies if code == "limited_ip")


async def test_account_burst_is_exact_under_concurrency(store: Store) -> None:
    """One account joining 100 times at once from 100 addresses, burst 5: exactly 5 pass (one
    new place, four repeats of it); a refusal by one limit charges neither."""
    rooms, rt = await room(store)
    replies = await asyncio.gather(*(rooms.join(rt, "acc", f"10.0.0.{i}") for i in range(100)))
    codes = sorted(code for code, _, _ in replies)
    assert codes == ["again"] * 4 + ["limited_account"] * 95 + ["ok"]
    assert len({tid for code, tid, _ in replies if code in ("ok", "again")}) == 1
    assert (await rooms.join(rt, "other", "10.0.0.7"))[0] == "ok"  # its IP bucket holds 1


async def test_subjects_are_independent(store: Store) -> None:
    rooms, rt = await room(store, RoomsConfig(join_per_ip_per_min=1, join_ip_burst=1))
    replies = await asyncio.gather(*(rooms.join(rt, f"acc-{i}", f"10.0.1.{i}") for i in range(50)))
    assert all(code == "ok" for code, _, _ in replies)
    assert (await rooms.join(rt, "acc-x", "10.0.1.0"))[0] == "limited_ip"


async def test_bucket_expires_with_its_window(store: Store) -> None:
    """A bucket key lives exactly as long as it matters (until the bucket is full again)."""
    cfg = RoomsConfig(join_per_ip_per_min=6, join_ip_burst=5)
    rooms, rt = await room(store, cfg)
    await rooms.join(rt, "acc", "10.0.0.1")
    ttl_ms = await store.client.pttl(rt.keys.join_limit("ip", "10.0.0.1"))
    assert 9_000 < ttl_ms <= 10_000
