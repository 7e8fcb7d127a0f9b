"""A Cluster client never opens more than ``redis.max_connections`` connections to a node: a
burst of plain commands and scripts together queues instead of failing (issue 11 item 30)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from guichet.app import SCRIPTS
from guichet.config import RedisConfig
from guichet.embedded import EmbeddedCluster
from guichet.room.service import HEARTBEAT
from guichet.store import keys
from guichet.store.client import connect


@pytest.fixture
def any_cluster(tmp_path: Path, cluster: EmbeddedCluster | None) -> Iterator[EmbeddedCluster]:
    """The session's Cluster under ``GUICHET_TEST_REDIS=cluster``, else one of the test's own."""
    if cluster is not None:
        yield cluster
        return
    with EmbeddedCluster(tmp_path / "cluster") as built:
        yield built


async def test_a_mixed_burst_stays_within_the_pool_of_each_node(
    any_cluster: EmbeddedCluster,
) -> None:
    store = connect(RedisConfig(cluster_seeds=tuple(any_cluster.seeds), max_connections=4),
                    scripts=SCRIPTS)  # fmt: skip
    try:
        await store.scripts.load_all()
        key = "g:{burst}:plain"

        async def plain(i: int) -> object:
            await asyncio.sleep(0)  # interleave with the scripts' flushes
            return await store.client.get(f"{key}{i % 3}")

        async def script(i: int) -> object:
            k = keys.RoomKeys(f"burst-{i % 7}")
            return await store.scripts(HEARTBEAT, [k.cfg, k.active], ["a"])

        outcomes = await asyncio.gather(
            *(f(i) for i in range(300) for f in (plain, script)), return_exceptions=True
        )
        assert [o for o in outcomes if isinstance(o, BaseException)] == []
        for node in store.client.get_nodes():  # type: ignore[union-attr]
            assert len(node._connections) <= 4, node.name
    finally:
        await store.close()
