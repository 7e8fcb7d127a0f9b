"""The connection to Redis: standalone, TLS, unix socket, or Cluster, from settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisError

from guichet import metrics
from guichet.config import RedisConfig
from guichet.store.plane import DataPlane
from guichet.store.scripts import Client, LuaScript, ScriptRegistry, error_kind

log = logging.getLogger("guichet.store")


@dataclass
class Health:
    ok: bool
    reason: str


class Store:
    """The one Redis client of a worker and its registered scripts."""

    def __init__(
        self,
        client: Client,
        mode: Literal["standalone", "cluster"],
        scripts: Sequence[LuaScript] = (),
        plane: DataPlane | None = None,
    ) -> None:
        self.client = client
        self.mode = mode
        self.plane = plane
        self.scripts = ScriptRegistry(client, scripts, plane)

    async def health(self, timeout_s: float) -> Health:
        """Reachable and every script loaded; missing scripts are loaded again on the way."""
        start = time.perf_counter()
        try:
            async with asyncio.timeout(timeout_s):
                await self.client.ping()
                missing = await self.scripts.missing()
                if missing:
                    log.warning("scripts missing in redis, reloading", extra={"missing": missing})
                    await self.scripts.load_all()
                    missing = await self.scripts.missing()
        except (RedisError, OSError, TimeoutError) as exc:
            metrics.REDIS_ERRORS.labels("health", error_kind(exc)).inc()
            return Health(False, f"redis unreachable: {error_kind(exc)}")
        finally:
            metrics.REDIS_LATENCY.labels("health").observe(time.perf_counter() - start)
        if missing:
            return Health(False, f"scripts not loaded: {', '.join(missing)}")
        return Health(True, "ok")

    async def close(self) -> None:
        if self.plane is not None:
            await self.plane.close()
        await self.client.aclose()


_GATE_HELD: ContextVar[bool] = ContextVar("guichet_cluster_gate_held", default=False)


class GatedCluster(RedisCluster):
    """A Cluster client that never needs more than ``max_in_flight`` connections to a node.

    redis-py's async Cluster pool raises ``MaxConnectionsError`` when a node's pool is full
    (the standalone client can use a blocking pool instead), and a pipeline that meets it
    closes the whole client (``ERRORS_ALLOW_RETRY``), cutting every other call in flight
    ("TCPTransport closed"). So every user of a connection queues on one gate first: a plain
    command, and a whole auto-pipelined batch of scripts (which takes at most one connection
    per node). Calls made while the gate is held (a pipeline's redirections, a multi-node
    command) pass through: the holder already counts for them.
    """

    def __init__(self, *args: Any, max_in_flight: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_flight = max_in_flight
        self._gate: asyncio.Semaphore | None = None

    @contextlib.asynccontextmanager
    async def gated(self) -> AsyncIterator[None]:
        """Hold one of the ``max_in_flight`` places (re-entrant within a task tree)."""
        if _GATE_HELD.get():
            yield
            return
        if self._gate is None:
            self._gate = asyncio.Semaphore(self._in_flight)
        async with self._gate:
            token = _GATE_HELD.set(True)
            try:
                yield
            finally:
                _GATE_HELD.reset(token)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.gated():
            return await super().execute_command(*args, **kwargs)


def connect(cfg: RedisConfig, url: str | None = None, scripts: Sequence[LuaScript] = ()) -> Store:
    """Build the client (connections open lazily). ``url`` overrides ``cfg.url`` (embedded)."""
    common = {
        "socket_timeout": cfg.socket_timeout_s,
        "socket_connect_timeout": cfg.connect_timeout_s,
        "decode_responses": False,
        "health_check_interval": 30,
        # No CLIENT SETINFO: one round trip less per new connection, no metadata lookup.
        "driver_info": None,
    }
    if cfg.cluster_seeds:
        nodes = [ClusterNode(host, port) for host, port in cfg.cluster_nodes]
        cluster = GatedCluster(
            startup_nodes=nodes,
            max_connections=cfg.max_connections,
            max_in_flight=cfg.max_connections,
            **common,
            **cfg.cluster_auth,
        )
        plane = DataPlane(cfg, cluster=cluster) if cfg.data_plane == "multiplex" else None
        return Store(cluster, "cluster", scripts, plane)
    target = url or cfg.url
    if target is None:
        raise ValueError("no redis url: start the embedded server first")
    # Blocking pool: a burst beyond max_connections waits for a connection instead of failing.
    pool = BlockingConnectionPool.from_url(
        target, max_connections=cfg.max_connections, timeout=cfg.socket_timeout_s, **common
    )
    plane = DataPlane(cfg, url=target) if cfg.data_plane == "multiplex" else None
    if plane is not None:
        plane.on_lost = _dropping_idle(pool)
    return Store(Redis.from_pool(pool), "standalone", scripts, plane)


def _dropping_idle(pool: BlockingConnectionPool) -> Callable[[], None]:
    """When the data plane loses the server, close the redis-py pool's idle connections too
    (they reconnect on next use): with the scripts on the plane, nothing else would cycle the
    dead ones out before a plain command fails on each."""
    tasks: set[asyncio.Task[None]] = set()

    def drop() -> None:
        task = asyncio.ensure_future(pool.disconnect(inuse_connections=False))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return drop
