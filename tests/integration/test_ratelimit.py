"""GCRA limits under concurrency: exact counts, shared by all callers, time from Redis."""

from __future__ import annotations

import asyncio

from guichet import ratelimit
from guichet.store.client import Store


async def test_burst_is_exact_under_concurrency(store: Store) -> None:
    """200 simultaneous requests against a burst of 25 at 1/min: exactly 25 pass."""
    limit = ratelimit.Limit(rate=1, period_s=60, burst=25)
    decisions = await asyncio.gather(
        *(ratelimit.hit(store, limit, "join-ip", "10.0.0.1") for _ in range(200))
    )
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 25
    refused = [d for d in decisions if not d.allowed]
    assert all(1 <= d.retry_after_s <= 60 for d in refused)
    assert sorted(d.remaining for d in allowed) == list(range(25))


async def test_subjects_are_independent(store: Store) -> None:
    limit = ratelimit.Limit(rate=1, period_s=60, burst=1)
    results = await asyncio.gather(
        *(ratelimit.hit(store, limit, "join-account", f"acc-{i}") for i in range(50))
    )
    assert all(d.allowed for d in results)
    assert not (await ratelimit.hit(store, limit, "join-account", "acc-0")).allowed


async def test_bucket_expires_with_its_window(store: Store) -> None:
    """The key lives exactly as long as it matters (until the bucket is full again)."""
    limit = ratelimit.Limit(rate=1, period_s=10, burst=5)
    await ratelimit.hit(store, limit, "t", "x")
    ttl_ms = await store.client.pttl("g:{rl:t:x}")
    assert 9_000 < ttl_ms <= 10_000
