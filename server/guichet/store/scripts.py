"""Lua scripts: declared beside their callers, loaded at start-up, called by SHA.

A component declares ``MY_SCRIPT = LuaScript("guichet.room", "join.lua")`` at module level and
lists it in its ``SCRIPTS``; the app hands every component's scripts to :class:`ScriptRegistry`,
which loads them at start-up so ``/readyz`` can check they are all present. Calls are EVALSHA,
over the multiplexed data plane (``plane.py``) or, with ``redis.data_plane = "pool"``,
coalesced per event-loop tick into one redis-py pipeline (``pipelining.py``); on NOSCRIPT (Redis
restarted, ``SCRIPT FLUSH``, failover) the source is loaded — on every primary of a Cluster —
and the call retried once.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import PipelineCommand, RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from guichet import metrics
from guichet.store.pipelining import Coalescer, gate
from guichet.store.plane import DataPlane
from guichet.store.resp_conn import pack

Client = Redis | RedisCluster
_INCLUDE = re.compile(r"^--!include (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class LuaScript:
    """One atomic decision: a ``.lua`` file shipped in ``package``, named by its file stem."""

    package: str
    filename: str
    source: str = field(init=False, repr=False)
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        text = resources.files(self.package).joinpath(self.filename).read_text(encoding="utf-8")
        if not text.startswith("--"):
            raise ValueError(f"{self.filename}: a script starts with a header comment")
        text = _INCLUDE.sub(self._fragment, text)
        object.__setattr__(self, "source", text)
        digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest)

    @property
    def name(self) -> str:
        return self.filename.removesuffix(".lua")

    def _fragment(self, match: re.Match[str]) -> str:
        """``--!include [package:]path.lua``: a shared fragment (Lua has no includes), e.g. the
        purchase-window check that the draw writes and the shop's hold script reads. A
        component keeps its fragments in a ``lua_include/`` folder (``--!include
        lua_include/gcra.lua``), apart from the scripts it registers."""
        package, _, path = match[1].rpartition(":")
        source = resources.files(package or self.package).joinpath(*path.split("/"))
        return source.read_text(encoding="utf-8").rstrip("\n")


def error_kind(exc: BaseException) -> str:
    """A bounded label for a Redis failure."""
    if isinstance(exc, RedisTimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, RedisConnectionError | ConnectionError | OSError):
        return "connection"
    if isinstance(exc, NoScriptError):
        return "noscript"
    return "response"


class ScriptRegistry:
    """The declared scripts bound to one client."""

    def __init__(
        self, client: Client, scripts: Sequence[LuaScript], plane: DataPlane | None = None
    ) -> None:
        self._client = client
        self._plane = plane
        self._scripts: dict[str, LuaScript] = {}
        for script in scripts:  # a script two components list (e.g. the audit note) counts once
            if self._scripts.setdefault(script.name, script) != script:
                raise ValueError(f"two scripts share the name {script.name}")
        self._coalescer = Coalescer(client)
        self._latency = {name: metrics.REDIS_LATENCY.labels(name) for name in self._scripts}

    @property
    def names(self) -> list[str]:
        return sorted(self._scripts)

    async def load_all(self) -> None:
        """SCRIPT LOAD every script (on every primary of a Cluster)."""
        for script in self._scripts.values():
            sha = await self._client.script_load(script.source)
            if sha != script.sha:
                raise RuntimeError(f"{script.name}: server SHA {sha} differs from {script.sha}")
            metrics.REDIS_SCRIPT_RELOADS.inc()

    async def missing(self) -> list[str]:
        """Names of the scripts some primary does not hold (empty when all are loaded)."""
        if not self._scripts:
            return []
        names = list(self._scripts)
        present = await self._client.script_exists(*(self._scripts[n].sha for n in names))
        return [name for name, ok in zip(names, present, strict=True) if not ok]

    async def __call__(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[Any] = ()
    ) -> Any:
        """Run ``script`` atomically; timed and counted by name."""
        if self._scripts.get(script.name) is not script:
            raise KeyError(f"script {script.name} is not registered")
        start = time.perf_counter()
        try:
            result = await self._run(script, keys, args)
        except RedisError as exc:
            metrics.REDIS_ERRORS.labels(script.name, error_kind(exc)).inc()
            raise
        finally:
            self._latency[script.name].observe(time.perf_counter() - start)
        return result

    async def durable(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[Any], timeout_ms: int
    ) -> tuple[Any, int]:
        """Run ``script``, then ``WAITAOF 1 0`` on the same connection (WAITAOF waits for the
        writes of its own connection): (result, local AOF fsyncs acknowledged — 0 means the
        write may not be on disk yet). One round trip; on a Cluster, to the keys' node."""
        if self._scripts.get(script.name) is not script:
            raise KeyError(f"script {script.name} is not registered")
        start = time.perf_counter()
        try:
            result, fsynced = await self._durable(script, keys, args, timeout_ms)
            if isinstance(result, NoScriptError):
                await self._reload(script)
                result, fsynced = await self._durable(script, keys, args, timeout_ms)
            for reply in (result, fsynced):
                if isinstance(reply, Exception):
                    raise reply
        except RedisError as exc:
            metrics.REDIS_ERRORS.labels(script.name, error_kind(exc)).inc()
            raise
        finally:
            self._latency[script.name].observe(time.perf_counter() - start)
        return result, int(fsynced[0])

    async def _durable(
        self, script: LuaScript, keys: Sequence[str], args: Sequence[Any], timeout_ms: int
    ) -> tuple[Any, Any]:
        call = ("EVALSHA", script.sha, len(keys), *keys, *args)
        wait = ("WAITAOF", 1, 0, timeout_ms)
        if self._plane is not None:  # adjacent on one connection, in one write
            result, fsynced = await self._plane.execute(
                keys[0], [pack(call), pack(wait)], blocking_s=timeout_ms / 1000
            )
            return result, fsynced
        if isinstance(self._client, RedisCluster):
            node = self._client.get_node_from_key(keys[0])
            assert node is not None
            commands = [PipelineCommand(0, *call), PipelineCommand(1, *wait)]
            async with gate(self._client):
                await node.execute_pipeline(commands)
            return commands[0].result, commands[1].result
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.execute_command(*call)
            pipe.execute_command(*wait)
            result, fsynced = await pipe.execute(raise_on_error=False)
        return result, fsynced

    async def _run(self, script: LuaScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        call = self._coalescer.evalsha if self._plane is None else self._plane.evalsha
        try:
            return await call(script.sha, keys, args)
        except NoScriptError:
            await self._reload(script)
            return await call(script.sha, keys, args)

    async def _reload(self, script: LuaScript) -> None:
        """Redis restarted, SCRIPT FLUSH or failover: load the script again before the one
        retry, on every primary."""
        if self._plane is None:
            await self._client.script_load(script.source)
        else:
            await self._plane.script_load(script.source)
        metrics.REDIS_SCRIPT_RELOADS.inc()
