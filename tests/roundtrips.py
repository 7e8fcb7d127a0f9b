"""Counting the Redis round trips this process makes (a counter, not a mock: every command still
goes to the real Valkey).

Every write redis-py makes to a connection goes through ``send_packed_command`` — a plain
command, a pipeline, the pool path's coalesced EVALSHA batch — and is followed by reading the
replies: one call is one round trip. The scripts' data plane (``store/resp_conn.py``) writes
each tick's commands in one ``_flush``: one flush is one round trip. ``RoundTrips`` wraps
both for its duration and records, per round trip, the names of the commands it carried
(``EVALSHA`` named by its script, e.g. ``people_register``). The readiness probe's PING /
SCRIPT EXISTS, which may run at any time, are left out. Only for the app in this process:
tests using it are marked ``@pytest.mark.inprocess("counts the app's own Redis calls")``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from redis.asyncio.connection import AbstractConnection

from guichet.store.resp_conn import RespConnection
from guichet.store.scripts import LuaScript

_PROBE = {"PING", "SCRIPT"}


def _names(packed: Any) -> list[bytes]:
    """The command names in RESP-packed bytes (one or several commands)."""
    single = isinstance(packed, (bytes, bytearray, memoryview, str))
    chunks = [packed] if single else list(packed)
    data = b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks)
    names: list[bytes] = []
    at = 0
    while at < len(data):
        assert data[at : at + 1] == b"*", data[at : at + 20]
        end = data.index(b"\r\n", at)
        count = int(data[at + 1 : end])
        at = end + 2
        args: list[bytes] = []
        for _ in range(count):
            end = data.index(b"\r\n", at)
            size = int(data[at + 1 : end])
            args.append(data[end + 2 : end + 2 + size])
            at = end + 2 + size + 2
        names.append(args[0].upper() + (b" " + args[1] if args[0].upper() == b"EVALSHA" else b""))
    return names


class RoundTrips:
    """The round trips made while it is active: ``trips`` lists each as its command names."""

    def __init__(self, scripts: Iterable[LuaScript] = ()) -> None:
        self._by_sha = {s.sha.encode(): s.name for s in scripts}
        self.trips: list[tuple[str, ...]] = []

    def _record(self, packed: Any) -> None:
        names = []
        for name in _names(packed):
            verb, _, sha = name.partition(b" ")
            names.append(self._by_sha.get(sha, sha.decode()) if sha else verb.decode())
        if not all(n.split()[0] in _PROBE for n in names):
            self.trips.append(tuple(names))

    @property
    def count(self) -> int:
        return len(self.trips)

    def clear(self) -> None:
        self.trips.clear()

    @contextlib.contextmanager
    def active(self) -> Iterator[RoundTrips]:
        original = AbstractConnection.send_packed_command
        record = self._record

        async def counted(
            conn: AbstractConnection, command: Any, check_health: bool = True
        ) -> None:
            record(command)
            await original(conn, command, check_health)

        flush = RespConnection._flush

        def flushed(conn: RespConnection) -> None:
            if not conn.closed and conn._out:
                record(b"".join(conn._out))
            flush(conn)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign,assignment]
        RespConnection._flush = flushed  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
            RespConnection._flush = flush  # type: ignore[method-assign]
