"""The multiplexed script data plane against a real Valkey: replies never go to the wrong
caller, failures reach every caller within the timeout, and the plane recovers by itself.
Standalone, or the session Cluster with GUICHET_TEST_REDIS=cluster (migration test)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from guichet import metrics
from guichet.config import ConfigError, RedisConfig, Settings, load_settings
from guichet.embedded import EmbeddedValkey
from guichet.room.service import HEARTBEAT
from guichet.store import keys
from guichet.store.client import Store, connect
from guichet.store.plane import DataPlane
from guichet.store.resp_conn import pack
from tests.conftest import MODE

ECHO = "if ARGV[1] == 'boom' then return redis.error_reply('boom') end return ARGV[1]"
COUNT = "redis.call('INCR', KEYS[1]) return ARGV[1]"


@pytest.fixture
async def plane_store(settings: Settings) -> AsyncIterator[Store]:
    store = connect(msgspec.structs.replace(settings.redis, data_plane="multiplex"))
    yield store
    await store.close()


def plane_of(store: Store) -> DataPlane:
    assert store.plane is not None
    return store.plane


async def echo_all(
    plane: DataPlane, sha: str, args: Sequence[str], key: str = "echo:{}"
) -> list[object]:
    calls = [plane.evalsha(sha, [key.format(i)], [arg]) for i, arg in enumerate(args)]
    return list(await asyncio.gather(*calls, return_exceptions=True))


async def test_concurrent_callers_get_their_own_replies(plane_store: Store) -> None:
    sha = await plane_store.client.script_load(ECHO)
    args = ["boom" if i % 97 == 13 else f"v{i}" for i in range(2000)]
    results = await echo_all(plane_of(plane_store), sha, args)
    for arg, result in zip(args, results, strict=True):
        if arg == "boom":  # fails alone, as redis-py's exception type
            assert isinstance(result, ResponseError)
            assert "boom" in str(result)
        else:
            assert result == arg.encode()


async def test_durable_runs_waitaof_on_the_same_connection(plane_store: Store) -> None:
    store = connect(plane_store_cfg(plane_store), scripts=(HEARTBEAT,))
    try:
        k = keys.RoomKeys("r1")
        result, fsynced = await store.scripts.durable(HEARTBEAT, [k.cfg, k.active], ["a"], 1000)
        assert result == [b"unknown", 0]  # loaded after NOSCRIPT (through the plane)
        assert fsynced == 1
    finally:
        await store.close()


async def test_a_blocking_durable_call_never_holds_up_the_hot_scripts(
    plane_store: Store,
) -> None:
    """Valkey reads nothing more from a connection blocked in WAITAOF (here BLPOP, which
    blocks the same way for as long as we like): durable calls get connections of their own,
    so the scripts sent meanwhile are answered while it still blocks."""
    plane = plane_of(plane_store)
    sha = await plane_store.client.script_load(ECHO)
    blocked = asyncio.ensure_future(
        plane.execute("{dp}:never", [pack(("BLPOP", "{dp}:never", 3))], blocking_s=3)
    )
    await asyncio.sleep(0)  # sent in this tick's write, before the scripts below
    replies = await echo_all(plane, sha, [f"v{i}" for i in range(200)], key="{{dp}}:e{}")
    assert replies == [f"v{i}".encode() for i in range(200)]
    assert not blocked.done()  # still blocked, and nobody waited for it
    second = await plane.execute("{dp}:x", [pack(("BLPOP", "{dp}:x", 1))], blocking_s=1)
    assert second == [None]  # a second blocking call did not queue behind the first either
    assert not blocked.done()
    assert await blocked == [None]


async def test_calls_after_close_are_connection_errors(settings: Settings) -> None:
    store = connect(msgspec.structs.replace(settings.redis, data_plane="multiplex"))
    plane = plane_of(store)
    await store.close()
    for call in (
        plane.evalsha("0" * 40, ["{dp}:k"], []),
        plane.execute("{dp}:k", [pack(("PING",))], blocking_s=1),
        plane.script_load("return 1"),
    ):
        with pytest.raises(RedisConnectionError, match="closed"):
            await call


def plane_store_cfg(store: Store) -> RedisConfig:
    assert store.plane is not None
    return store.plane.cfg


async def test_pool_data_plane_still_serves_scripts(settings: Settings) -> None:
    store = connect(
        msgspec.structs.replace(settings.redis, data_plane="pool"), scripts=(HEARTBEAT,)
    )
    try:
        assert store.plane is None  # redis-py's pool and the per-tick Coalescer
        assert await heartbeats(store, 20) == [[b"unknown", 0]] * 20
    finally:
        await store.close()


def test_data_plane_setting_is_checked(tmp_path: Path) -> None:
    empty = tmp_path / "guichet.toml"
    empty.touch()
    for bad in ({"data_plane": "fast"}, {"plane_connections": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            load_settings(empty, environ={}, overrides={"redis": bad})


async def test_cancelled_callers_do_not_shift_replies(plane_store: Store) -> None:
    plane = plane_of(plane_store)
    sha = await plane_store.client.script_load(ECHO)
    tasks = [asyncio.create_task(plane.evalsha(sha, [f"c:{i}"], [f"v{i}"])) for i in range(400)]
    await asyncio.sleep(0)  # every call is queued on its connection
    for task in tasks[::2]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for i, result in enumerate(results):
        if i % 2:
            assert result == f"v{i}".encode()
        else:
            assert isinstance(result, asyncio.CancelledError)
    assert await echo_all(plane, sha, ["a", "b", "c"]) == [b"a", b"b", b"c"]


async def test_client_kill_under_load(plane_store: Store, settings: Settings) -> None:
    plane = plane_of(plane_store)
    sha = await plane_store.client.script_load(ECHO)
    before = metrics.REDIS_PLANE_CONNECTS._value.get()
    args = [f"v{i}" for i in range(3000)]
    calls = asyncio.ensure_future(echo_all(plane, sha, args))
    await asyncio.sleep(0.001)
    await kill_clients(plane_store)
    async with asyncio.timeout(settings.redis.socket_timeout_s + 1):
        results = await calls
    for arg, result in zip(args, results, strict=True):
        assert result == arg.encode() or isinstance(result, RedisConnectionError), result
    assert await echo_all(plane, sha, args[:100]) == [a.encode() for a in args[:100]]
    assert metrics.REDIS_PLANE_CONNECTS._value.get() > before


async def kill_clients(store: Store) -> None:
    """CLIENT KILL every normal connection but the killer's own, on every node."""
    if isinstance(store.client, RedisCluster):
        for node in store.client.get_primaries():
            async with Redis(host=node.host, port=int(node.port)) as admin:
                await cmd(admin, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    else:
        await cmd(store.client, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")


async def heartbeats(store: Store, n: int) -> list[object]:
    calls = [
        store.scripts(HEARTBEAT, [keys.RoomKeys(f"r{i}").cfg, keys.RoomKeys(f"r{i}").active], ["a"])
        for i in range(n)
    ]
    return list(await asyncio.gather(*calls, return_exceptions=True))


async def test_kill_9_under_load_then_restart(private_valkey: EmbeddedValkey) -> None:
    cfg = RedisConfig(url=private_valkey.url, connect_timeout_s=0.5, socket_timeout_s=2.0)
    store = connect(cfg, scripts=(HEARTBEAT,))
    try:
        await store.scripts.load_all()
        assert private_valkey.process is not None
        calls = asyncio.ensure_future(heartbeats(store, 3000))
        await asyncio.sleep(0.001)
        os.kill(private_valkey.process.pid, signal.SIGKILL)
        async with asyncio.timeout(cfg.socket_timeout_s + 1):
            results = await calls
        for result in results:
            assert result == [b"unknown", 0] or isinstance(result, RedisConnectionError), result
        async with asyncio.timeout(cfg.connect_timeout_s + 1):  # down: fails fast, no hang
            assert all(isinstance(r, RedisConnectionError) for r in await heartbeats(store, 50))
        await asyncio.to_thread(private_valkey.stop)
        await asyncio.to_thread(private_valkey.start)  # same port; no scripts: NOSCRIPT path
        assert await heartbeats(store, 200) == [[b"unknown", 0]] * 200
    finally:
        await store.close()


async def test_frozen_server_times_out(private_valkey: EmbeddedValkey) -> None:
    cfg = RedisConfig(url=private_valkey.url, connect_timeout_s=0.5, socket_timeout_s=0.5)
    store = connect(cfg, scripts=(HEARTBEAT,))
    try:
        await store.scripts.load_all()
        assert await heartbeats(store, 10) == [[b"unknown", 0]] * 10
        assert private_valkey.process is not None
        os.kill(private_valkey.process.pid, signal.SIGSTOP)
        try:
            async with asyncio.timeout(cfg.socket_timeout_s * 2 + 0.5):
                results = await heartbeats(store, 100)
        finally:
            os.kill(private_valkey.process.pid, signal.SIGCONT)
        assert all(isinstance(r, RedisTimeoutError | RedisConnectionError) for r in results)
        assert any(isinstance(r, RedisTimeoutError) for r in results)
        assert await heartbeats(store, 10) == [[b"unknown", 0]] * 10  # a new connection
    finally:
        await store.close()


def test_plane_on_uvloop_with_password(tmp_path: Path) -> None:
    """``guichet serve`` runs uvloop (its transports are not asyncio's) and its embedded
    Valkey wants a password (AUTH goes first, with SELECT)."""

    async def run(url: str) -> list[object]:
        plane = DataPlane(RedisConfig(url=url), url=url)
        try:
            return await plane.execute(None, [pack(("PING",)), pack(("CLIENT", "INFO"))])
        finally:
            await plane.close()

    with EmbeddedValkey(tmp_path / "valkey", auth=True) as server:
        pong, info = uvloop.run(run(server.url.removesuffix("/0") + "/3"))
    assert pong == b"PONG"
    assert isinstance(info, bytes)
    assert b" db=3 " in info


# --- hostile bytes: a fake server --------------------------------------------------------


class FakeServer:
    """Answers every command with ``reply`` (whatever bytes the test sets)."""

    def __init__(self) -> None:
        self.reply = b"+OK\r\n"
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        while await reader.read(65536):
            writer.write(self.reply)
        writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()


async def test_malformed_reply_fails_the_callers_only() -> None:
    fake = FakeServer()
    async with fake as url:
        plane = DataPlane(RedisConfig(url=url, socket_timeout_s=0.5), url=url)
        try:
            fake.reply = b"?garbage\r\n"
            results = await echo_all(plane, "0" * 40, ["a"] * 10)
            assert all(isinstance(r, RedisConnectionError) for r in results), results
            fake.reply = b"$1\r\nx\r\n"
            assert await plane.evalsha("0" * 40, ["k"], ["a"]) == b"x"  # reconnected
        finally:
            await plane.close()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(reply=st.binary(max_size=64) | st.sampled_from([b"*2\r\n$1\r\na\r\n", b"-ERR x\r\n:1\r\n"]))
def test_any_bytes_from_the_server_never_crash_or_hang(reply: bytes) -> None:
    async def run() -> None:
        fake = FakeServer()
        async with fake as url:
            plane = DataPlane(RedisConfig(url=url, socket_timeout_s=0.2), url=url)
            fake.reply = reply
            try:
                async with asyncio.timeout(2):
                    results = await echo_all(plane, "0" * 40, ["a"] * 3)
            finally:
                await plane.close()
        for result in results:  # a value, or redis-py's error: nothing else, never a hang
            assert not isinstance(result, BaseException) or isinstance(result, RedisError)

    asyncio.run(run())


# --- Cluster: a slot migrated under load --------------------------------------------------


@pytest.mark.skipif(MODE != "cluster", reason="a slot migration needs the Cluster")
async def test_slot_migrated_under_load(plane_store: Store) -> None:
    cluster = plane_store.client
    assert isinstance(cluster, RedisCluster)
    plane = plane_of(plane_store)
    sha = await cluster.script_load(COUNT)
    slot = key_slot(b"{mig}")
    await cluster.initialize()
    source = cluster.nodes_manager.get_node_from_slot(slot)
    target = next(n for n in cluster.get_primaries() if n.name != source.name)
    names = [f"{{mig}}:k{i}" for i in range(40)]
    redirects_before = sum(redirects().values())
    done, goal = 0, 500
    stop, reached = asyncio.Event(), asyncio.Event()

    async def load() -> None:
        nonlocal done
        i = 0
        while not stop.is_set():
            batch = [plane.evalsha(sha, [names[(i + j) % 40]], [str(i + j)]) for j in range(50)]
            for j, result in enumerate(await asyncio.gather(*batch, return_exceptions=True)):
                assert result == str(i + j).encode(), result  # each its own reply, no error
            done += 50
            i += 50
            if done >= goal:
                reached.set()

    async with (
        Redis(host=source.host, port=int(source.port)) as src,
        Redis(host=target.host, port=int(target.port)) as dst,
    ):
        src_id = (await cmd(src, "CLUSTER", "MYID")).decode()
        dst_id = (await cmd(dst, "CLUSTER", "MYID")).decode()
        runner = asyncio.create_task(load())
        await reached.wait()
        await migrate(src, dst, slot, src_id, dst_id, target.host, int(target.port))
        await cluster_wide_owner(cluster, slot, dst_id)
        goal = done + 500  # load goes on against the new owner
        reached.clear()
        await reached.wait()
        stop.set()
        await runner
        assert sum([int(await dst.get(n) or 0) for n in names]) == done  # all on the new node
        assert await cmd(src, "CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        assert sum(redirects().values()) > redirects_before  # MOVED/ASK were followed
        for n in names:  # give the slot back, empty, so later tests see the usual layout
            await dst.delete(n)
        await cluster_wide_owner(cluster, slot, src_id)


async def cmd(client: Redis, *args: object) -> Any:
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


def redirects() -> dict[str, float]:
    return {
        kind: metrics.REDIS_PLANE_REDIRECTS.labels(kind)._value.get()
        for kind in ("moved", "ask", "tryagain")
    }


async def migrate(
    src: Redis, dst: Redis, slot: int, src_id: str, dst_id: str, host: str, port: int
) -> None:
    """The standard resharding steps: IMPORTING, MIGRATING, MIGRATE the keys, NODE."""
    await cmd(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    await cmd(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    while batch := await cmd(src, "CLUSTER", "GETKEYSINSLOT", slot, 5):
        await cmd(src, "MIGRATE", host, port, "", 0, 5000, "KEYS", *batch)
        await asyncio.sleep(0.005)  # calls meet a half-migrated slot: ASK
    await cmd(dst, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    await cmd(src, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)


async def cluster_wide_owner(cluster: RedisCluster, slot: int, owner_id: str) -> None:
    for node in cluster.get_primaries():
        async with Redis(host=node.host, port=int(node.port)) as admin:
            await cmd(admin, "CLUSTER", "SETSLOT", slot, "NODE", owner_id)
