"""The store against a real Valkey (standalone, or a Cluster with GUICHET_TEST_REDIS=cluster)."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from guichet import metrics, ratelimit
from guichet.config import RedisConfig
from guichet.embedded import EmbeddedValkey
from guichet.store import keys
from guichet.store.client import Store, connect


async def test_scripts_loaded_at_start(store: Store) -> None:
    assert await store.scripts.missing() == []
    assert (await store.health(1.0)).ok


async def test_noscript_recovery_after_script_flush(store: Store) -> None:
    """After SCRIPT FLUSH (what a restart or failover looks like), calls still succeed."""
    limit = ratelimit.Limit(rate=10, period_s=1, burst=10)
    assert (await ratelimit.hit(store, limit, "t", "before")).allowed
    await store.client.script_flush()
    assert "ratelimit" in await store.scripts.missing()
    decision = await ratelimit.hit(store, limit, "t", "after")  # NOSCRIPT → load → retry
    assert decision.allowed
    assert "ratelimit" not in await store.scripts.missing()


async def test_health_reloads_flushed_scripts(store: Store) -> None:
    await store.client.script_flush()
    before = metrics.REDIS_SCRIPT_RELOADS._value.get()
    health = await store.health(1.0)
    assert health.ok, health.reason
    assert metrics.REDIS_SCRIPT_RELOADS._value.get() == before + len(store.scripts.names)
    assert await store.scripts.missing() == []


async def test_health_reports_unreachable_then_recovers(private_valkey: EmbeddedValkey) -> None:
    store = connect(
        RedisConfig(url=private_valkey.url, connect_timeout_s=0.5), scripts=ratelimit.SCRIPTS
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
    limit = ratelimit.Limit(rate=1, period_s=60, burst=1)
    await store.client.script_flush()
    decisions = await asyncio.gather(
        *(ratelimit.hit(store, limit, "batch", f"s{i}") for i in range(50))
    )
    assert all(d.allowed for d in decisions)
    assert "ratelimit" not in await store.scripts.missing()


async def test_a_failing_call_does_not_fail_its_batch(store: Store) -> None:
    good = [
        store.scripts(ratelimit.GCRA, [keys.rate_limit("mix", f"ok{i}")], [1000, 5, 1])
        for i in range(10)
    ]
    bad = store.scripts(ratelimit.GCRA, [keys.rate_limit("mix", "bad")], ["not-a-number", 5, 1])
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    assert all(isinstance(r, list) and r[0] == 1 for r in results[:10])
    assert isinstance(results[10], ResponseError)
