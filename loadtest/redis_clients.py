"""Redis client choice (issue 17): the same calls through each Python client we considered.

    python -m loadtest.redis_clients --ops 20000 --concurrency 1 200 --rounds 3

A private Valkey (the embedded one, AOF on), then for each client, each workload and each
concurrency: ``--ops`` calls made by C tasks on one uvloop loop; ops/s (calls / wall time),
p50 and p99 of one call, and the ratio to redis-py at the same workload and concurrency. The
clients, interleaved round by round (their order rotates so the machine's drift is shared):

- ``redis-py``: ``redis.asyncio`` with hiredis over a ``BlockingConnectionPool`` (64), as
  ``guichet.store.client`` builds it;
- ``redis-py-pyparser``: the same with redis-py's pure-Python RESP2 parser (what hiredis buys);
- ``plane``: the project's data plane (``guichet.store.plane.DataPlane``, one pipelined
  connection, hiredis);
- ``asyncio-redis``: its ``Pool`` (64); not a dependency of the server, in the ``loadtest``
  extra only; skipped with a message when it is not installed.

Workloads: ``evalsha`` (a small read script like the status check: HGET + TIME, keys in one
hash tag, its reply decoded to Python values) and ``get`` (a 32-byte value). Every reply is
checked, so an arm that fails cannot pass as fast. The run also records how asyncio-redis
reports an ``EVALSHA`` of an unknown script (the NOSCRIPT reply).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import uvloop
from redis._parsers import _AsyncRESP2Parser
from redis.utils import HIREDIS_AVAILABLE

from guichet.config import RedisConfig
from guichet.embedded import EmbeddedValkey
from guichet.store.plane import DataPlane
from guichet.store.resp_conn import pack
from loadtest.report import TIMES, median, percentile

try:
    import asyncio_redis
except ImportError:  # not a runtime dependency: the loadtest extra has it
    asyncio_redis = None

SCRIPT = """
local position = redis.call('HGET', KEYS[1], ARGV[1])
local now = redis.call('TIME')
return {position or false, now[1]}
"""
STATUS_KEY = "{bench}:status"
VALUE_KEY = "{bench}:value"
VALUE = b"v" * 32
POSITION = b"4711"
POOL_SIZE = 64  # RedisConfig.max_connections' default
# redis-py's pool wait: the store's is socket_timeout_s (5 s), but at C=200 on a loaded 2-core
# machine some waiters starve past 5 s ("No connection available"); measured here, not failed
POOL_WAIT_S = 60.0
CLIENTS = ("redis-py", "redis-py-pyparser", "plane", "asyncio-redis")
WORKLOADS = ("evalsha", "get")
MISSING = "asyncio-redis is not installed (pip install -e '.[loadtest]'): its arm is skipped"

Call = Callable[[], Awaitable[None]]


@dataclass
class Cell:
    """One measurement: a client, a workload, a concurrency."""

    client: str
    workload: str
    concurrency: int
    ops: int
    ops_s: float
    p50_ms: float
    p99_ms: float
    ratio: float = float("nan")  # to redis-py, same workload and concurrency


class Wrong(AssertionError):
    """A client returned something else than the expected reply."""


def _expect(got: object, want: object, client: str) -> None:
    if got != want:
        raise Wrong(f"{client}: got {got!r}, expected {want!r}")


class Arm:
    """A client: opened once per round, two calls, closed."""

    name = ""

    async def open(self, url: str, sha: str) -> None:
        raise NotImplementedError

    async def evalsha(self) -> None:
        raise NotImplementedError

    async def get(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class RedisPy(Arm):
    name = "redis-py"
    parser: type | None = None  # None: redis-py's default, hiredis when installed

    async def open(self, url: str, sha: str) -> None:
        extra: dict[str, Any] = {"parser_class": self.parser} if self.parser else {}
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=POOL_SIZE, timeout=POOL_WAIT_S, decode_responses=False, **extra
        )
        self.client = aioredis.Redis(connection_pool=pool)
        self.sha = sha
        await self.client.ping()

    async def evalsha(self) -> None:
        reply = await self.client.evalsha(self.sha, 1, STATUS_KEY, "acc-1")
        _expect(reply[0], POSITION, self.name)

    async def get(self) -> None:
        _expect(await self.client.get(VALUE_KEY), VALUE, self.name)

    async def close(self) -> None:
        await self.client.aclose()


class RedisPyPythonParser(RedisPy):
    name = "redis-py-pyparser"
    parser = _AsyncRESP2Parser


class Plane(Arm):
    name = "plane"

    async def open(self, url: str, sha: str) -> None:
        self.plane = DataPlane(RedisConfig(url=url), url=url)
        self.sha = sha
        self.get_command = pack(("GET", VALUE_KEY))

    async def evalsha(self) -> None:
        reply = await self.plane.evalsha(self.sha, (STATUS_KEY,), ("acc-1",))
        _expect(reply[0], POSITION, self.name)

    async def get(self) -> None:
        reply = (await self.plane.execute(VALUE_KEY, [self.get_command]))[0]
        _expect(reply, VALUE, self.name)

    async def close(self) -> None:
        await self.plane.close()


class AsyncioRedis(Arm):
    name = "asyncio-redis"

    async def open(self, url: str, sha: str) -> None:
        assert asyncio_redis is not None
        host, port = _host_port(url)
        self.pool = await asyncio_redis.Pool.create(
            host=host, port=port, poolsize=POOL_SIZE, encoder=asyncio_redis.encoders.BytesEncoder()
        )
        self.sha = sha

    async def evalsha(self) -> None:
        reply = await self.pool.evalsha(self.sha, [STATUS_KEY.encode()], [b"acc-1"])
        # Decoded by hand: its EvalScriptReply.return_value() is broken for a list holding
        # strings (it returns the list's own reply object in their place; see facts).
        value = await _decoded(reply._value)
        _expect(value[0], POSITION, self.name)

    async def get(self) -> None:
        _expect(await self.pool.get(VALUE_KEY.encode()), VALUE, self.name)

    async def close(self) -> None:
        self.pool.close()


async def _decoded(value: Any) -> Any:
    """An asyncio-redis reply as Python values (its multi-bulk replies are futures)."""
    if isinstance(value, asyncio_redis.protocol.MultiBulkReply):
        return [await _decoded(await item) for item in value]
    return value


ARMS: dict[str, type[Arm]] = {
    "redis-py": RedisPy,
    "redis-py-pyparser": RedisPyPythonParser,
    "plane": Plane,
    "asyncio-redis": AsyncioRedis,
}


def _host_port(url: str) -> tuple[str, int]:
    hostport = url.split("://", 1)[1].rsplit("@", 1)[-1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    return host, int(port)


async def measure(call: Call, ops: int, concurrency: int) -> tuple[float, list[float]]:
    """``ops`` calls by ``concurrency`` tasks: wall seconds, each call's seconds."""
    latencies: list[float] = []
    left = ops

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(min(concurrency, ops)):
            tg.create_task(worker())
    return time.perf_counter() - start, latencies


async def asyncio_redis_facts(url: str, sha: str) -> dict[str, str]:
    """What asyncio-redis makes of an ``EVALSHA`` of a script the server does not have, of a
    script's runtime error, and of a script's list reply through ``return_value()``."""
    assert asyncio_redis is not None
    host, port = _host_port(url)
    conn = await asyncio_redis.Connection.create(
        host=host, port=port, encoder=asyncio_redis.encoders.BytesEncoder()
    )
    facts = {}
    try:
        for fact, keys in (("noscript", [STATUS_KEY.encode()]), ("script_error", [])):
            # the unknown SHA; then the bench script with no key: a Lua error in the script
            try:
                await conn.evalsha("0" * 40 if fact == "noscript" else sha, keys, [b"acc-1"])
                facts[fact] = "no error"
            except Exception as exc:  # the point: which type, and does it say why
                facts[fact] = f"{type(exc).__name__}({str(exc)!r})"
        reply = await conn.evalsha(sha, [STATUS_KEY.encode()], [b"acc-1"])
        facts["list_reply_return_value"] = type((await reply.return_value())[0]).__name__
    finally:
        conn.close()
    return facts


async def run(url: str, clients: Sequence[str], args: argparse.Namespace) -> dict[str, Any]:
    seed = aioredis.Redis.from_url(url)
    sha = str(await seed.script_load(SCRIPT))
    await seed.hset(STATUS_KEY, "acc-1", POSITION)
    await seed.set(VALUE_KEY, VALUE)
    await seed.aclose()
    rounds: list[list[Cell]] = []
    for r in range(args.rounds):
        order = list(clients[r % len(clients) :]) + list(clients[: r % len(clients)])
        cells: list[Cell] = []
        for name in order:
            arm = ARMS[name]()
            await arm.open(url, sha)
            try:
                for workload in args.workloads:
                    call: Call = getattr(arm, workload)
                    await measure(call, min(args.ops, 500), 8)  # warm-up: connections, caches
                    for c in args.concurrency:
                        wall, lat = await measure(call, args.ops, c)
                        cells.append(
                            Cell(
                                name, workload, c, args.ops, args.ops / wall,
                                percentile(lat, 50) * 1000, percentile(lat, 99) * 1000,
                            )
                        )  # fmt: skip
            finally:
                await arm.close()
        rounds.append(_with_ratios(cells))
        if args.rounds > 1:
            print(f"round {r + 1}\n{table(rounds[-1])}\n", flush=True)
    facts: dict[str, Any] = {"hiredis": HIREDIS_AVAILABLE}
    if "asyncio-redis" in clients:
        facts["asyncio_redis_version"] = importlib.metadata.version("asyncio-redis")
        facts["asyncio_redis"] = await asyncio_redis_facts(url, sha) if asyncio_redis else None
    return {"rounds": [[asdict(c) for c in cells] for cells in rounds], "facts": facts}


def _with_ratios(cells: list[Cell]) -> list[Cell]:
    base = {(c.workload, c.concurrency): c.ops_s for c in cells if c.client == "redis-py"}
    for c in cells:
        if (c.workload, c.concurrency) in base:
            c.ratio = c.ops_s / base[(c.workload, c.concurrency)]
    return sorted(cells, key=lambda c: (c.workload, c.concurrency, CLIENTS.index(c.client)))


def combine(rounds: Sequence[Sequence[Cell]]) -> list[Cell]:
    """Medians over rounds of every (client, workload, concurrency)."""
    groups: dict[tuple[str, str, int], list[Cell]] = {}
    for cells in rounds:
        for c in cells:
            groups.setdefault((c.client, c.workload, c.concurrency), []).append(c)
    combined = [
        Cell(
            client, workload, conc, same[0].ops,
            median([c.ops_s for c in same]), median([c.p50_ms for c in same]),
            median([c.p99_ms for c in same]), median([c.ratio for c in same]),
        )
        for (client, workload, conc), same in groups.items()
    ]  # fmt: skip
    return sorted(combined, key=lambda c: (c.workload, c.concurrency, CLIENTS.index(c.client)))


def table(cells: Sequence[Cell], *, markdown: bool = False) -> str:
    if markdown:
        lines = [
            "| workload | C | client | ops/s | vs redis-py | p50 ms | p99 ms |",
            "|---|---:|---|---:|---:|---:|---:|",
        ]
        for c in cells:
            lines.append(
                f"| {c.workload} | {c.concurrency} | {c.client} | {c.ops_s:,.0f} | "
                f"{c.ratio:.2f}{TIMES} | {c.p50_ms:.3f} | {c.p99_ms:.3f} |"
            )
        return "\n".join(lines)
    lines = [
        f"{'workload':8} {'C':>4} {'client':18} {'ops/s':>9} {'ratio':>6} {'p50 ms':>8} p99 ms"
    ]
    for c in cells:
        lines.append(
            f"{c.workload:8} {c.concurrency:4} {c.client:18} {c.ops_s:9.0f} {c.ratio:5.2f}x"
            f" {c.p50_ms:8.3f} {c.p99_ms:8.3f}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.redis_clients",
        description="Compare Python Redis clients on EVALSHA and GET against a private Valkey.",
    )
    parser.add_argument("--ops", type=int, default=20_000, help="calls per measurement")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 200], help="concurrent tasks"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the medians are printed")
    parser.add_argument(
        "--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS), help="clients to measure"
    )
    parser.add_argument(
        "--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS), help="calls made"
    )
    parser.add_argument("--json", type=Path, help="also write the rounds and facts here")
    parser.add_argument("--markdown", action="store_true", help="print the medians as Markdown")
    args = parser.parse_args(argv)
    if args.ops < 1 or args.rounds < 1 or min(args.concurrency) < 1:
        parser.error("--ops, --rounds and --concurrency must be at least 1")
    if "redis-py" not in args.clients:
        parser.error("--clients must include redis-py (the reference of the ratios)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    clients = list(args.clients)
    skipped = []
    if asyncio_redis is None and "asyncio-redis" in clients:
        print(MISSING, file=sys.stderr)
        clients.remove("asyncio-redis")
        skipped.append("asyncio-redis")
    with (
        tempfile.TemporaryDirectory(prefix="guichet-clients-") as tmp,
        EmbeddedValkey(Path(tmp) / "valkey") as server,
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        result = runner.run(run(server.url, clients, args))
    rounds = [[Cell(**c) for c in cells] for cells in result["rounds"]]
    medians = combine(rounds)
    print(f"medians of {args.rounds} round(s), {args.ops} calls each; facts: {result['facts']}")
    print(table(medians, markdown=args.markdown))
    if args.json:
        result["skipped"] = skipped
        result["medians"] = [asdict(c) for c in medians]
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
