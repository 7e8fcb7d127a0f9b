"""The room pacer: each worker ticks every room it knows, about every ``tick_interval_s``.

A round runs ``tick.lua`` once per room (one pipeline in all: the calls are coalesced), takes
the counters as the rooms' snapshots (:meth:`Rooms.tick`) and exports them as gauges; every
2 s it also picks up rooms made by other workers and rescans the admission keys. A failed
round (Redis down) is counted and logged, and the last snapshots keep being served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from guichet import metrics
from guichet.background import Periodic
from guichet.room.model import MODES, Counters
from guichet.room.service import Rooms

log = logging.getLogger("guichet.room")

_INDEX_REFRESH_S = 2.0


class Pacer:
    """The pacer loop of one worker, on :class:`background.Periodic`."""

    def __init__(self, rooms: Rooms, keyring_refresh: Callable[[], None] | None = None) -> None:
        self.rooms = rooms
        self._keyring_refresh = keyring_refresh
        self._index_checked = 0.0
        self._periodic = Periodic("room pacer", rooms.cfg.tick_interval_s, self.round)

    def start(self) -> None:
        self._periodic.start()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loop (a round in flight is cancelled after ``timeout_s``)."""
        await self._periodic.stop(timeout_s)

    async def round(self) -> None:
        """Tick every room once; on a Redis failure keep the last snapshots and count it."""
        started = time.monotonic()
        try:
            if started - self._index_checked >= _INDEX_REFRESH_S:
                self._index_checked = started
                await self.rooms.refresh_index()
                if self._keyring_refresh is not None:  # reads a directory: off the loop
                    await asyncio.to_thread(self._keyring_refresh)
            runtimes = [self.rooms.get(room) for room in self.rooms.ids()]
            results = await asyncio.gather(
                *(self.rooms.tick(rt) for rt in runtimes if rt is not None),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, Exception):
                    raise result
            metrics.ROOM_TICKS.labels("ok").inc()
        except Exception as exc:  # Redis down: keep serving the last snapshot, retry
            metrics.ROOM_TICKS.labels("error").inc()
            log.warning("pacer tick failed", extra={"error": type(exc).__name__})
        for room in self.rooms.ids():
            rt = self.rooms.get(room)
            if rt is not None and rt.counters is not None:
                export(room, rt.counters)


def export(room: str, c: Counters) -> None:
    """The room's gauges from its snapshot."""
    metrics.ROOM_WAITING.labels(room).set(max(0, c.issued - c.serving) if c.opened else 0)
    metrics.ROOM_PREQUEUE.labels(room).set(0 if c.opened else c.prequeue)
    metrics.ROOM_ACTIVE.labels(room).set(c.active)
    metrics.ROOM_SERVING.labels(room).set(c.serving)
    metrics.ROOM_RATE.labels(room).set(c.rate)
    metrics.ROOM_EFFECTIVE_RATE.labels(room).set(c.effective_rate)
    for mode in MODES:
        metrics.ROOM_MODE.labels(room, mode).set(1 if mode == c.mode else 0)
