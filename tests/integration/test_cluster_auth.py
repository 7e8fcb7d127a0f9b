"""A Redis Cluster that wants AUTH, reached with ``[user:]password@host:port`` seeds."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import AuthenticationError, RedisClusterException

from guichet.app import SCRIPTS
from guichet.config import RedisConfig, masked
from guichet.embedded import EmbeddedCluster
from guichet.store import sync
from guichet.store.client import connect
from tests.conftest import make_settings

PASSWORD = secrets.token_hex(16) + '/?#" \\x'  # characters a seed must carry as they are


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(tmp_path_factory.mktemp("locked"), password=PASSWORD) as built:
        yield built


async def test_seeds_with_a_password_reach_the_cluster(
    locked: EmbeddedCluster, tmp_path: Path
) -> None:
    seeds = [f"default:{PASSWORD}@{seed}" for seed in locked.seeds]
    settings = await asyncio.to_thread(make_settings, tmp_path, {"cluster_seeds": seeds})
    assert PASSWORD not in repr(masked(settings))
    store = connect(settings.redis, scripts=SCRIPTS)
    try:
        await store.scripts.load_all()
        assert (await store.health(5)).ok
        await store.client.set("{k}a", "1")
        assert await store.client.get("{k}a") == b"1"
    finally:
        await store.close()
    client = await asyncio.to_thread(sync.connect, settings.redis, sync.target(settings.redis))
    try:
        assert await asyncio.to_thread(client.get, "{k}a") == b"1"
    finally:
        await asyncio.to_thread(client.close)


def test_seeds_without_the_password_are_refused(locked: EmbeddedCluster) -> None:
    cfg = RedisConfig(cluster_seeds=tuple(locked.seeds))
    with pytest.raises((AuthenticationError, RedisClusterException)):
        sync.connect(cfg, cfg.cluster_seeds).ping()
