"""The script data plane: a few pipelined connections per Valkey node, for the hot scripts.

redis-py's per-call machinery (pool checkout, command packing, response callbacks) costs a
route about three times what Valkey does; a bare ``asyncio.Protocol`` that joins each tick's
calls into one write and parses replies with hiredis reaches ~0.9x of a route without Redis
(issue 16's reference figures). So scripts go through :class:`DataPlane`
(``redis.data_plane = "multiplex"``) and redis-py stays for plain commands, script loading and
the Cluster's slot map.

On a Cluster a call goes to the primary of its first key's slot; ``MOVED`` is followed to the
node it names (and the slot map refreshed in the background, once for all callers), ``ASK``
with ``ASKING`` in the same write, ``TRYAGAIN`` after a short pause; after a few redirections
the last error is the caller's. A lost connection fails its own callers only and is re-opened
by the next call, one connect at a time per connection slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from guichet import metrics
from guichet.config import RedisConfig
from guichet.store.resp_conn import Endpoint, RespConnection, open_connection, pack

log = logging.getLogger("guichet.store")

MAX_REDIRECTS = 5
_ASKING = pack(("ASKING",))
_Address = tuple[str, int] | None  # None: the standalone server


def endpoint_from_url(url: str) -> Endpoint:
    """redis://, rediss:// or unix:// as redis-py reads them (same query options)."""
    opts: dict[str, Any] = dict(parse_url(url))
    context = None
    if opts.get("connection_class") is SSLConnection:
        context = ssl.create_default_context(cafile=opts.get("ssl_ca_certs"))
        if str(opts.get("ssl_cert_reqs", "required")).lower() in ("none", "optional"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    unix = opts.get("connection_class") is UnixDomainSocketConnection
    return Endpoint(
        host=opts.get("host", "127.0.0.1"),
        port=int(opts.get("port", 6379)),
        path=opts.get("path") if unix else None,
        ssl=context,
        username=opts.get("username"),
        password=opts.get("password"),
        db=int(opts.get("db", 0)),
    )


class NodePool:
    """``size`` connections to one node, used round-robin, each opened lazily."""

    def __init__(
        self,
        endpoint: Endpoint,
        size: int,
        cfg: RedisConfig,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._cfg = cfg
        self._on_lost = on_lost
        self._conns: list[RespConnection | None] = [None] * size
        self._opening: list[asyncio.Task[RespConnection] | None] = [None] * size
        self._next = 0

    async def connection(self, idle: bool = False) -> RespConnection:
        """The next connection round-robin; ``idle``: one with no reply owed if any is open,
        else a slot not yet open, else the least busy (a blocking ``WAITAOF`` holds its
        connection until the fsync: durable calls should not queue behind each other)."""
        if idle:
            return await self._idle()
        i = self._next
        self._next = (i + 1) % len(self._conns)
        return await self._at(i)

    async def _idle(self) -> RespConnection:
        unopened = None
        busiest: tuple[int, int] | None = None
        for i, conn in enumerate(self._conns):
            if conn is None or conn.closed:
                unopened = i if unopened is None else unopened
            elif conn.pending == 0:
                return conn
            elif busiest is None or conn.pending < busiest[0]:
                busiest = (conn.pending, i)
        if unopened is not None:
            return await self._at(unopened)
        assert busiest is not None
        return await self._at(busiest[1])

    async def _at(self, i: int) -> RespConnection:
        conn = self._conns[i]
        if conn is not None and not conn.closed:
            return conn
        task = self._opening[i]
        if task is None:  # one connect attempt at a time per slot; its waiters share it
            task = asyncio.create_task(self._open(i))
            task.add_done_callback(_retrieved)  # its waiters may all have given up
            self._opening[i] = task
        return await asyncio.shield(task)

    async def _open(self, i: int) -> RespConnection:
        try:
            conn = await open_connection(
                self.endpoint, self._cfg.connect_timeout_s, self._cfg.socket_timeout_s
            )
        finally:
            self._opening[i] = None
        metrics.REDIS_PLANE_CONNECTS.inc()
        conn.on_lost = self._on_lost
        self._conns[i] = conn
        return conn

    def close(self) -> None:
        for task in self._opening:
            if task is not None:
                task.cancel()
        for conn in self._conns:
            if conn is not None:
                conn.abort(RedisConnectionError("the data plane is closed"))


def _retrieved(task: asyncio.Task[RespConnection]) -> None:
    if not task.cancelled():
        task.exception()


class DataPlane:
    """Script calls over pipelined connections: standalone (``url``) or Cluster (``cluster``)."""

    def __init__(
        self, cfg: RedisConfig, url: str | None = None, cluster: RedisCluster | None = None
    ) -> None:
        self._cfg = cfg
        self._cluster = cluster
        self._pools: dict[_Address, NodePool] = {}
        #: Connections for durable calls (``EVALSHA`` + ``WAITAOF``), apart: Valkey reads
        #: nothing more from a connection blocked in ``WAITAOF``, so the hot scripts must not
        #: share one with it. Up to ``redis.max_connections`` per node, opened as needed.
        self._durable: dict[_Address, NodePool] = {}
        self._refresh: asyncio.Task[None] | None = None
        self._closed = False
        self.on_lost: Callable[[], None] | None = None
        if cluster is None:
            if url is None:
                raise ValueError("the data plane needs a url or a cluster client")
            self._endpoint: Endpoint | None = endpoint_from_url(url)
            self._pools[None] = NodePool(
                self._endpoint, cfg.plane_connections, cfg, self._server_lost
            )
        else:
            self._endpoint = None

    def _server_lost(self) -> None:
        """A standalone server dropped a connection (killed, restarted): the redis-py
        client's idle pooled connections to it are dead too, and it does not retry, so each
        would fail its next command once (a 503). ``on_lost`` lets the store drop them."""
        if self.on_lost is not None and not self._closed:
            self.on_lost()

    @property
    def cfg(self) -> RedisConfig:
        return self._cfg

    async def evalsha(self, sha: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """One script call; an error reply is raised as redis-py's exception type."""
        key = keys[0] if keys else None
        reply = (await self.execute(key, [pack(("EVALSHA", sha, len(keys), *keys, *args))]))[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def script_load(self, source: str) -> None:
        """SCRIPT LOAD on every primary (after a NOSCRIPT), over the plane's own connections:
        redis-py's pooled ones may still be a restarted server's dead ones."""
        if self._closed:
            raise RedisConnectionError("the data plane is closed")
        command = [pack(("SCRIPT", "LOAD", source))]
        if self._cluster is None:
            replies = await (await self._pool(None).connection()).send(command)
        else:
            if not self._cluster.nodes_manager.slots_cache:
                await self._cluster.initialize()
            primaries = self._cluster.nodes_manager.get_nodes_by_server_type("primary")
            conns = [self._pool((n.host, int(n.port))).connection() for n in primaries]
            sent = [conn.send(command) for conn in await asyncio.gather(*conns)]
            replies = [reply for replies in await asyncio.gather(*sent) for reply in replies]
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply

    async def execute(
        self, key: str | None, commands: list[bytes], blocking_s: float | None = None
    ) -> list[Any]:
        """Packed commands sent adjacent on one connection of ``key``'s node; their replies
        (error replies as exception values). Redirections are judged on the first reply.
        ``blocking_s``: the commands block their connection up to that long on purpose
        (``WAITAOF``): they go on a connection of their own. A Cluster's errors (node down,
        slots not covered, redirections that never end) reach the caller as
        ``ConnectionError`` (503) and have the slot map read again."""
        if self._closed:
            raise RedisConnectionError("the data plane is closed")
        if self._cluster is None:
            return await self._send(None, commands, blocking_s)
        try:
            return await self._cluster_execute(key, commands, blocking_s)
        except (RedisConnectionError, RedisTimeoutError):
            self._refresh_slots()  # a primary down or failed over sends no MOVED
            raise
        except (RedisClusterException, ClusterDownError) as exc:  # down, slot not covered
            self._refresh_slots()
            raise RedisConnectionError(f"redis cluster unavailable: {exc}") from exc

    async def _send(
        self, address: _Address, commands: list[bytes], blocking_s: float | None
    ) -> list[Any]:
        if blocking_s is None:
            conn = await self._pool(address).connection()
            return await conn.send(commands)
        conn = await self._pool(address, durable=True).connection(idle=True)
        return await conn.send(commands, extra_s=blocking_s)

    async def _cluster_execute(
        self, key: str | None, commands: list[bytes], blocking_s: float | None
    ) -> list[Any]:
        address = await self._address(key)
        asking = False
        replies: list[Any] = []
        for attempt in range(MAX_REDIRECTS + 1):
            if asking:
                replies = (await self._send(address, [_ASKING, *commands], blocking_s))[1:]
            else:
                replies = await self._send(address, commands, blocking_s)
            first = replies[0]
            asking = False
            if isinstance(first, MovedError):
                metrics.REDIS_PLANE_REDIRECTS.labels("moved").inc()
                address = first.node_addr
                self._refresh_slots()
            elif isinstance(first, AskError):
                metrics.REDIS_PLANE_REDIRECTS.labels("ask").inc()
                address, asking = first.node_addr, True
            elif isinstance(first, TryAgainError):  # a multi-key call during a migration
                metrics.REDIS_PLANE_REDIRECTS.labels("tryagain").inc()
                await asyncio.sleep(0.005 * 2**attempt)
            elif isinstance(first, ClusterDownError):
                raise first
            else:
                return replies
        self._refresh_slots()
        raise RedisConnectionError(f"redis cluster: still redirected after {MAX_REDIRECTS} tries")

    async def _address(self, key: str | None) -> tuple[str, int]:
        assert self._cluster is not None
        manager = self._cluster.nodes_manager
        if not manager.slots_cache:
            await self._cluster.initialize()
        if key is None:  # no keys: any primary
            node = manager.get_nodes_by_server_type("primary")[0]
        else:
            node = manager.get_node_from_slot(key_slot(key.encode()))
        return node.host, int(node.port)

    def _pool(self, address: _Address, durable: bool = False) -> NodePool:
        pools = self._durable if durable else self._pools
        pool = pools.get(address)
        if pool is None:
            if self._closed:
                raise RedisConnectionError("the data plane is closed")
            if address is None:
                assert self._endpoint is not None
                endpoint = self._endpoint
            else:
                auth = self._cfg.cluster_auth
                endpoint = Endpoint(
                    host=address[0],
                    port=address[1],
                    username=auth.get("username"),
                    password=auth.get("password"),
                )
            size = self._cfg.max_connections if durable else self._cfg.plane_connections
            lost = self._server_lost if address is None else None
            pool = pools[address] = NodePool(endpoint, size, self._cfg, lost)
        return pool

    def _refresh_slots(self) -> None:
        """Re-read the slot map in the background; one refresh at a time for all callers."""
        if self._refresh is not None and not self._refresh.done():
            return
        assert self._cluster is not None
        self._refresh = asyncio.create_task(self._reload(self._cluster))

    @staticmethod
    async def _reload(cluster: RedisCluster) -> None:
        try:
            await cluster.nodes_manager.initialize()
        except Exception as exc:  # the next failure tries again (RedisClusterException too)
            log.warning("slot map refresh failed", extra={"error": type(exc).__name__})

    async def close(self) -> None:
        self._closed = True
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        for pools in (self._pools, self._durable):
            for pool in pools.values():
                pool.close()
            pools.clear()
