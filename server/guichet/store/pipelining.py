"""Auto-pipelining: EVALSHA calls issued in the same event-loop tick share one round trip.

A request that needs one script call hands it to :class:`Coalescer`; the first call of a tick
schedules a flush with ``call_soon``, later calls of that tick join it, and the flush sends
them all in one write on one connection (standalone) or one non-transactional pipeline
(Cluster: redis-py splits it per node). Each
caller gets its own result or error: a failing call never fails its neighbours. This is what
ioredis calls auto-pipelining; it turns N round trips and N socket writes into one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from hiredis import pack_command
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

_Call = tuple[str, Sequence[Any], "asyncio.Future[Any]"]


def gate(client: Redis | RedisCluster) -> contextlib.AbstractAsyncContextManager[None]:
    """The client's connection gate (``GatedCluster.gated``), or none: a standalone client's
    blocking pool already waits for a free connection."""
    gated = getattr(client, "gated", None)
    return contextlib.nullcontext() if gated is None else gated()


class Coalescer:
    """Batch EVALSHA calls per loop tick into one pipeline."""

    def __init__(self, client: Redis | RedisCluster, max_batch: int = 512) -> None:
        self._client = client
        self._max_batch = max_batch
        self._pending: list[_Call] = []
        self._flushing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def evalsha(self, sha: str, keys: Sequence[str], args: Sequence[Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((sha, (len(keys), *keys, *args), future))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flushing = False
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self._max_batch):
            task = asyncio.create_task(self._send(pending[start : start + self._max_batch]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _direct(self, client: Redis, batch: list[_Call]) -> list[Any]:
        """Standalone: the whole batch as one write on one pooled connection, replies read in
        order. Skips redis-py's Pipeline object (command stack, per-command option dicts and
        response callbacks), which cost more per call than the server does."""
        pool = client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            # hiredis packs a call ~10x faster than redis-py's encoder (1 µs vs 12 µs for a
            # hold's 16 arguments); the bytes on the wire are the same RESP.
            await conn.send_packed_command(
                b"".join([pack_command(("EVALSHA", sha, *args)) for sha, args, _ in batch]),
                check_health=False,
            )
            results: list[Any] = []
            for _ in batch:
                try:
                    results.append(await conn.read_response())
                except ResponseError as exc:  # this call's error; the connection is fine
                    results.append(exc)
            return results
        except BaseException:
            await conn.disconnect()  # replies may be left unread: never reuse it
            raise
        finally:
            await pool.release(conn)

    @staticmethod
    async def _cluster(client: RedisCluster, batch: list[_Call]) -> list[Any]:
        if len(batch) == 1:
            sha, args, _ = batch[0]
            return [await client.evalsha(sha, *args)]
        pipe = client.pipeline(transaction=False)
        for sha, args, _ in batch:
            # execute_command: redis-py blocks the evalsha() helper on Cluster pipelines
            pipe.execute_command("EVALSHA", sha, *args)
        return list(await pipe.execute(raise_on_error=False))

    async def _send(self, batch: list[_Call]) -> None:
        results: list[Any]
        try:
            if isinstance(self._client, Redis):
                results = await self._direct(self._client, batch)
            else:
                async with gate(self._client):  # at most one connection per node for all
                    results = await self._cluster(self._client, batch)
        except BaseException as exc:  # the whole trip failed: every caller learns why
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():  # caller gave up (client disconnected)
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
