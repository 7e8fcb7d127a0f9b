"""Benchmark runner: throughput of Guichet endpoints as ratios to a bare aiohttp+uvloop
endpoint measured in the same run, on the same machine, with the same wrk settings.

    python -m loadtest.bench [--duration 10] [--connections 64]

Targets, each measured with ``wrk -t1 -c<connections> -d<duration>s --latency`` after a
warm-up of the same kind:

- bare aiohttp+uvloop ``/ok`` (the baseline, 1.00x), and again with wrk's per-request Lua
  script (the same one the room targets use) to show what the script costs the generator;
- ``loadtest/bench_app.py`` (Guichet plus one route): ``/healthz`` and one EVALSHA;
- the real service, ``python -m guichet serve`` with one worker and its own embedded Valkey,
  join limits raised through its config, a room created through the admin API and
  ``--accounts`` accounts joined before measuring:

  - **status poll**: ``GET /v1/rooms/bench/status`` with ``X-Queue-Ticket``, rotating over
    the tickets of all those accounts (a wrk Lua script);
  - **join, repeat**: ``POST /v1/rooms/bench/join`` rotating over the same accounts' bearer
    tokens: every request is a *repeat* join (token already verified and cached, the account
    already holds a ticket: 200, same ticket);
  - **join, first sight**: a fresh token per request from a pool of ``--first-sight-tokens``
    pre-minted tokens of new accounts: one Ed25519 signature check and one new ticket per
    request (201). Skipped with ``--first-sight-tokens 0``.

Goals from the waiting-room issue: status >= 0.8x, join >= 0.5x of the bare endpoint.

Needs ``wrk`` (Debian package ``wrk``). Every server binds 127.0.0.1 only; each wrk run is
bounded by ``--duration``; all processes are stopped at the end. ``--py-spy DIR`` also records
the service's stacks during each room target (``pip install py-spy``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import aiohttp
import redis

from guichet.embedded import EmbeddedValkey, free_port, running_url
from loadtest import shop_prep
from loadtest.harness import (
    ROOT,
    GuichetServer,
    Issuer,
    draw_spec,
    put_draw,
    put_room,
    room_spec,
    room_stats,
    stop_process,
    wait_ready,
)
from loadtest.report import Row, WrkRun, combine_rounds, parse_wrk, ratio_table, with_ratios

ROTATE_LUA = Path(__file__).resolve().parent / "wrk" / "rotate.lua"
SHOP_LUA = Path(__file__).resolve().parent / "wrk" / "shop.lua"
ROOM = "bench"
STATUS_GOAL, JOIN_GOAL, HOLD_GOAL = 0.8, 0.5, 0.3
REGISTER_GOAL = 0.5
DRAW = "bench"


@contextlib.contextmanager
def _process(args: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        stop_process(proc)


@dataclass
class Wrk:
    """wrk with the run's fixed settings: 1 thread, ``connections``, ``duration`` s."""

    duration_s: int
    connections: int
    warmup_s: int

    def run(
        self,
        url: str,
        duration_s: int | None = None,
        script_args: Sequence[str] = (),
        script: Path = ROTATE_LUA,
    ) -> WrkRun:
        duration = self.duration_s if duration_s is None else duration_s
        command = ["wrk", "-t1", f"-c{self.connections}", f"-d{duration}s", "--latency"]
        if script_args:
            command += ["-s", str(script), url, "--", *script_args]
        else:
            command.append(url)
        out = subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=duration + 60
        ).stdout
        result = parse_wrk(out)
        if result.non_2xx:
            raise RuntimeError(f"{url}: {result.non_2xx} non-2xx responses:\n{out}")
        return result


# --- preparation -------------------------------------------------------------------------


def mint_tokens(issuer: Issuer, prefix: str, count: int, path: Path) -> None:
    """``count`` account tokens (accounts ``<prefix>-<i>``), one a line, in ``path``."""
    with path.open("w") as out:
        for i in range(count):
            out.write(issuer.account(f"{prefix}-{i}", ttl_s=3 * 3600) + "\n")


async def _join_all(base_url: str, tokens: list[str], concurrency: int = 64) -> list[str]:
    """Join with every token once (first sight, 201); returns the queue tickets in order."""
    tickets: list[str] = [""] * len(tokens)
    queue = iter(range(len(tokens)))
    url = f"{base_url}/v1/rooms/{ROOM}/join"

    async def worker(http: aiohttp.ClientSession) -> None:
        for i in queue:
            async with http.post(url, headers={"Authorization": f"Bearer {tokens[i]}"}) as r:
                body = await r.json()
                if r.status != 201:
                    raise RuntimeError(f"join {i}: HTTP {r.status} {body}")
                tickets[i] = body["ticket"]

    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return tickets


@contextlib.contextmanager
def _py_spy(pid: int | None, out: Path | None, name: str, seconds: int) -> Iterator[None]:
    """Record the server's stacks (collapsed format) while the block runs, if asked."""
    if out is None or pid is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.txt"
    proc = subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--idle",
         "--duration", str(seconds), "--output", str(target)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        try:
            proc.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- the run -----------------------------------------------------------------------------


@dataclass
class Target:
    """One line of the table: a URL, wrk's Lua arguments, and what to check around a run."""

    name: str
    url: str
    script_args: list[str] = field(default_factory=list)
    goal: float | None = None
    spy_name: str = ""  # record py-spy stacks of the service under this name
    issued: Callable[[], int] | None = None  # the room's ticket count (before/after checks)
    expect_new: str = ""  # "none" (repeat joins) or "all" (first sight)
    pool: int = 0  # first sight: tokens in the file; every request must take an unused one
    offset: int = 0  # first sight: the next unused line of the file
    script: Path = ROTATE_LUA  # the wrk Lua script

    def with_offset(self) -> list[str]:
        """The script's arguments, starting at the next unused line of a pool."""
        method = ["POST"] if self.script == ROTATE_LUA else []
        return [*self.script_args, str(self.offset), *method]


def measure(wrk: Wrk, t: Target, spy: Path | None, pid: int | None) -> Row:
    """Warm up, then measure ``t`` (first-sight targets never reuse a token)."""
    if not t.pool:
        wrk.run(t.url, wrk.warmup_s, t.script_args, t.script)
    else:
        warm = wrk.run(t.url, wrk.warmup_s, t.with_offset(), t.script)
        t.offset += warm.requests + 4 * wrk.connections  # wrk counts answers, not requests sent
    before = t.issued() if t.issued else 0
    args = t.with_offset() if t.pool else t.script_args
    with _py_spy(pid if t.spy_name else None, spy, t.spy_name, wrk.duration_s):
        r = wrk.run(t.url, None, args, t.script)
    row = Row(t.name, r.rps, r.p50_ms, r.p99_ms, goal=t.goal)
    if t.issued:
        new = t.issued() - before
        if t.expect_new == "none":
            row.note = f"{new} new tickets (0 expected: every join a repeat)"
        else:
            row.note = f"{new} new tickets for {r.requests} answers counted by wrk"
    if t.pool:
        fresh = max(0, min(r.requests, t.pool - t.offset))
        t.offset += r.requests + 4 * wrk.connections
        if fresh < r.requests:
            row.note += (
                f"; POOL TOO SMALL: {r.requests - fresh} requests reused their line "
                "(raise --first-sight-tokens / --confirms)"
            )
    return row


LADDER_NAMES = {
    "route": "ladder: bare + status-sized body on /v1/rooms/{room}/status",
    "middleware": "ladder: + a pass-through middleware",
    "request-id": "ladder: + X-Request-Id response header",
    "metrics": "ladder: + in-flight gauge, counter, histogram",
    "encode": "ladder: + msgspec-encode the Status per request",
}


def prepare_room(server: GuichetServer, issuer: Issuer, tokens_file: Path, tmp: Path) -> Path:
    """Create the room (open, slow pacing so most people wait) and join every account."""
    put_room(server.url, issuer, ROOM, room_spec(opens_in_s=-60, rate_per_s=20, max_active=100_000))
    tokens = tokens_file.read_text().split()
    started = time.monotonic()
    tickets = asyncio.run(_join_all(server.url, tokens))
    print(f"joined {len(tickets):,} accounts in {time.monotonic() - started:.1f} s", flush=True)
    tickets_file = tmp / "tickets.txt"
    tickets_file.write_text("\n".join(tickets) + "\n")
    return tickets_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per target")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every target this many times, interleaved; report medians",
    )
    parser.add_argument(
        "--accounts", type=int, default=10_000, help="accounts joined before measuring"
    )
    parser.add_argument(
        "--first-sight-tokens",
        type=int,
        default=200_000,
        help="fresh tokens for 'join, first sight' (0: skip it)",
    )
    parser.add_argument(
        "--confirms", type=int, default=40_000, help="held packs prepared for 'shop confirm'"
    )
    parser.add_argument(
        "--ladder",
        action="store_true",
        help="also measure the baseline plus one status-poll ingredient at a time "
        "(loadtest/ladder_app.py)",
    )
    parser.add_argument(
        "--py-spy", type=Path, help="record py-spy stacks of the room targets (1st round) here"
    )
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="WORD",
        help="measure only the targets whose name contains one of these words (and the baseline)",
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    if args.py_spy and shutil.which("py-spy") is None:
        print("py-spy not found: pip install py-spy", file=sys.stderr)
        return 2

    wrk = Wrk(args.duration, args.connections, args.warmup)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="guichet-bench-")))
        valkey = stack.enter_context(EmbeddedValkey(tmp / "valkey"))

        # Tokens first, before any server runs (minting is CPU work).
        service = GuichetServer(tmp / "guichet")
        service.prepare()
        issuer = service.issuer()
        tokens_file, pool_file = tmp / "tokens.txt", tmp / "first-sight.txt"
        started = time.monotonic()
        mint_tokens(issuer, "bench", args.accounts, tokens_file)
        mint_tokens(issuer, "fresh", args.first_sight_tokens, pool_file)
        minted = args.accounts + args.first_sight_tokens
        print(f"minted {minted:,} tokens in {time.monotonic() - started:.1f} s", flush=True)
        dummy = tmp / "dummy.txt"  # same Lua script on the baseline: what it costs wrk
        dummy.write_text("\n".join(f"value-{i:06d}-" + "x" * 140 for i in range(10_000)) + "\n")

        base_port, app_port = free_port(), free_port()
        base_url, app_url = f"http://127.0.0.1:{base_port}", f"http://127.0.0.1:{app_port}"
        stack.enter_context(
            _process([sys.executable, "-m", "loadtest.baseline_app", str(base_port)])
        )
        stack.enter_context(
            _process([sys.executable, "-m", "loadtest.bench_app", str(app_port), valkey.url])
        )
        ladder: list[Target] = []
        if args.ladder:
            from loadtest.ladder_app import STEPS

            for step in STEPS:
                port = free_port()
                stack.enter_context(
                    _process([sys.executable, "-m", "loadtest.ladder_app", str(port), step])
                )
                ladder.append(
                    Target(LADDER_NAMES[step], f"http://127.0.0.1:{port}/v1/rooms/{ROOM}/status")
                )
        stack.enter_context(service)
        wait_ready_plain(f"{base_url}/ok")
        wait_ready(app_url)
        for t in ladder:
            wait_ready_plain(t.url)
        tickets_file = prepare_room(service, issuer, tokens_file, tmp)
        shop_url = running_url(service.settings().redis.data_dir)
        assert shop_url is not None
        started = time.monotonic()
        holders = [f"bench-{i}" for i in range(args.accounts)]
        hold_body, confirms_file = shop_prep.prepare(
            shop_url, service.settings(), issuer, holders, tmp, args.confirms
        )
        print(f"shop prepared ({args.confirms:,} holds to confirm) in "
              f"{time.monotonic() - started:.1f} s", flush=True)  # fmt: skip

        def issued() -> int:
            return int(room_stats(service.url, issuer, ROOM)["issued"])

        room = f"{service.url}/v1/rooms/{ROOM}"
        targets = [
            Target("bare aiohttp+uvloop /ok", f"{base_url}/ok"),
            Target(
                "bare /ok, same wrk Lua script (rotating a header)",
                f"{base_url}/ok",
                [str(dummy), "X-Queue-Ticket"],
            ),
            Target("guichet /healthz (middleware, no Redis)", f"{app_url}/healthz"),
            Target("guichet one EVALSHA per request", f"{app_url}/bench/evalsha"),
            *ladder,
            Target(
                f"room status poll ({args.accounts:,} tickets rotated)",
                f"{room}/status",
                [str(tickets_file), "X-Queue-Ticket"],
                goal=STATUS_GOAL,
                spy_name="status",
            ),
            Target(
                f"room join, repeat ({args.accounts:,} verified tokens rotated)",
                f"{room}/join",
                [str(tokens_file), "Authorization", "Bearer ", "0", "POST"],
                goal=JOIN_GOAL,
                spy_name="join-repeat",
                issued=issued,
                expect_new="none",
            ),
        ]
        if args.first_sight_tokens:
            targets.append(
                Target(
                    "room join, first sight (new token + new ticket each)",
                    f"{room}/join",
                    [str(pool_file), "Authorization", "Bearer "],
                    goal=JOIN_GOAL,
                    spy_name="join-first-sight",
                    issued=issued,
                    expect_new="all",
                    pool=args.first_sight_tokens,
                )
            )
        put_draw(service.url, issuer, DRAW, draw_spec(closes_in_s=3 * 3600))
        consent = tmp / "consent.json"
        consent.write_text('{"accept_rules": true, "accept_data_processing": true}')
        holds = f"{service.url}/v1/sales/{shop_prep.SALE}/holds"
        targets += [
            Target(
                f"draw register ({args.accounts:,} accounts rotated: 201 once, then 200)",
                f"{service.url}/v1/draws/{DRAW}/entries",
                [str(tokens_file), "Authorization", "Bearer ", "0", "POST", str(consent)],
                goal=REGISTER_GOAL,
                spy_name="register",
            ),
            Target(
                "shop availability (3 sessions, from the worker's snapshot)",
                f"{service.url}/v1/sales/{shop_prep.SALE}/availability",
            ),
            Target(
                f"shop hold, a pack of 3 ({args.accounts:,} accounts rotated, window checked)",
                holds,
                ["hold", str(tokens_file), str(hold_body)],
                goal=HOLD_GOAL,
                spy_name="hold",
                script=SHOP_LUA,
            ),
            Target(
                "shop confirm (each a held pack; answers after the AOF fsync, WAITAOF)",
                holds,
                ["confirm", str(confirms_file)],
                spy_name="confirm",
                script=SHOP_LUA,
                pool=args.confirms,
            ),
        ]
        targets.append(Target("bare aiohttp+uvloop /ok, again at the end", f"{base_url}/ok"))
        if args.only:  # the baseline always; then only the targets asked for
            targets = [targets[0], *(t for t in targets[1:-1]
                                     if any(word in t.name for word in args.only))]  # fmt: skip

        rounds: list[list[Row]] = []
        for n in range(args.rounds):
            spy = args.py_spy if n == 0 else None
            rows = [measure(wrk, t, spy, service.pid) for t in targets]
            rounds.append(with_ratios(rows, rows[0].rps))
            if args.rounds > 1:
                print(f"round {n + 1}/{args.rounds} done", flush=True)
        code = service.stop()
        if code not in (0, None):
            print(f"guichet serve exited with code {code}:\n{service.log_tail()}")
        redis_side = redis_benchmark(valkey.port, args.connections)

    rows = combine_rounds(rounds)
    print()
    rounds_text = f", median of {args.rounds} interleaved rounds" if args.rounds > 1 else ""
    print(
        f"{date.today()}  wrk -t1 -c{args.connections} -d{args.duration}s --latency "
        f"(warm-up {args.warmup} s each), one worker per server, same run{rounds_text}"
    )
    print(ratio_table(rows))
    for row in rows:
        if row.note:
            print(f"  {row.name}: {row.note}")
    evalsha = next((r for r in rows if r.name == "guichet one EVALSHA per request"), None)
    if redis_side is not None and evalsha is not None:
        print(
            f"redis-benchmark EVALSHA (the same heartbeat script, -c{args.connections}, no HTTP): "
            f"{redis_side:,.0f}/s; guichet's one-EVALSHA route reaches "
            f"{evalsha.rps / redis_side:.2f}x of it"
        )
    if args.markdown:
        print()
        print(ratio_table(rows, markdown=True))
    if args.py_spy:
        print(f"py-spy stacks (collapsed): {args.py_spy}/*.txt; read: python -m loadtest.stacks")
    return 0


def redis_benchmark(port: int, clients: int, requests: int = 300_000) -> float | None:
    """Requests/s of ``redis-benchmark`` running the room heartbeat script by EVALSHA (keys
    spread over 100,000 rooms that do not exist): what one Valkey core gives with no HTTP and
    no Python in front. None when ``redis-benchmark`` (Debian ``redis-tools``) is not installed."""
    if shutil.which("redis-benchmark") is None:
        return None
    from guichet.room.service import HEARTBEAT

    with redis.Redis(port=port) as client:
        client.script_load(HEARTBEAT.source)
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", str(clients), "-n", str(requests), "-r",
         "100000", "--csv", "EVALSHA", HEARTBEAT.sha, "2", "g:{room:b__rand_int__}:cfg",
         "g:{room:b__rand_int__}:active", "a"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        fields = [f.strip('"') for f in line.split(",")]
        if fields and fields[0].startswith("EVALSHA"):
            return float(fields[1])
    return None


def wait_ready_plain(url: str, timeout_s: float = 20.0) -> None:
    """Block until ``url`` answers (the bare apps have no /readyz)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):  # noqa: S310
            return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


if __name__ == "__main__":
    raise SystemExit(main())
