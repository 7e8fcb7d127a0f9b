"""The store against a real Valkey (standalone, or a Cluster with GUICHET_TEST_REDIS=cluster)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from guichet import metrics
from guichet.config import RedisConfig
from guichet.embedded import EmbeddedValkey
from guichet.room.service import HEARTBEAT
from guichet.store import keys
from guichet.store.client import Store, connect


async def test_scripts_loaded_at_start(store: Store) -> None:
    assert await store.scripts.missing() == []
    assert (await store.health(1.0)).ok


async def test_noscript_recovery_after_script_flush(store: Store) -> None:
    """After SCRIPT FLUSH (what a restart or failover looks like), calls still succeed."""
    assert await heartbeat(store, "before") == [b"unknown", 0]
    await store.client.script_flush()
    assert "heartbeat" in await store.scripts.missing()
    assert await heartbeat(store, "after") == [b"unknown", 0]  # NOSCRIPT → load → retry
    assert "heartbeat" not in await store.scripts.missing()


async def heartbeat(store: Store, room: str, account: str = "a") -> object:
    """One call of a registered script (a room's heartbeat): any script would do."""
    k = keys.RoomKeys(room)
    return await store.scripts(HEARTBEAT, [k.cfg, k.active], [account])


async def test_health_reloads_flushed_scripts(store: Store) -> None:
    await store.client.script_flush()
    before = metrics.REDIS_SCRIPT_RELOADS._value.get()
    health = await store.health(1.0)
    assert health.ok, health.reason
    assert metrics.REDIS_SCRIPT_RELOADS._value.get() == before + len(store.scripts.names)
    assert await store.scripts.missing() == []


async def test_health_reports_unreachable_then_recovers(private_valkey: EmbeddedValkey) -> None:
    store = connect(
        RedisConfig(url=private_valkey.url, connect_timeout_s=0.5), scripts=(HEARTBEAT,)
    )
    try:
        await store.scripts.load_all()
        assert (await store.health(1.0)).ok
        await asyncio.to_thread(private_valkey.stop)
        health = await store.health(1.0)
        assert not health.ok
        assert health.reason.startswith("redis unreachable")
        await asyncio.to_thread(private_valkey.start)  # same port, same data folder, scripts gone
        health = await store.health(2.0)
        assert health.ok, health.reason
        assert await store.scripts.missing() == []
    finally:
        await store.close()


async def test_embedded_server_has_aof_on(private_valkey: EmbeddedValkey) -> None:
    async with Redis.from_url(private_valkey.url) as client:
        assert (await client.config_get("appendonly"))["appendonly"] == "yes"


def test_rate_limit_keys_are_hash_tagged() -> None:
    key = keys.rate_limit("join-ip", "::1")
    assert keys.tag_of(key) == "rl:join-ip:::1"
    with pytest.raises(ValueError, match="invalid key part"):
        keys.rate_limit("join", "a{b}")


async def test_concurrent_calls_share_pipelines_and_survive_noscript(store: Store) -> None:
    """Calls of one loop tick go out as one pipeline; a flushed script cache mid-sale is
    recovered for every caller of the batch."""
    await store.client.script_flush()
    replies = await asyncio.gather(*(heartbeat(store, f"batch-{i}") for i in range(50)))
    assert all(r == [b"unknown", 0] for r in replies)
    assert "heartbeat" not in await store.scripts.missing()


async def test_a_failing_call_does_not_fail_its_batch(store: Store) -> None:
    await store.client.hset(keys.RoomKeys("mix-bad").cfg, "idle_timeout_s", "not-a-number")
    good = [heartbeat(store, f"mix-{i}") for i in range(10)]
    bad = heartbeat(store, "mix-bad")  # the script fails on the bad number
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert all(r == [b"unknown", 0] for r in results[:10])
    assert isinstance(results[10], ResponseError)
