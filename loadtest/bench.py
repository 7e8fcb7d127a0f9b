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

Goals (issue 16; ratios to the bare endpoint): status >= 0.8x, join repeat and register
>= 0.6x, hold >= 0.4x, first sight >= 0.25x, confirm >= 0.15x; on every row p99 <= 5 x p50.
Each target is measured ``--rounds`` times (default 3, interleaved; medians and the range).

Variants: ``--service-config KEY=VALUE`` (dotted TOML keys, e.g. ``redis.max_connections=32``)
sets the service's config; ``--compare NAME:KEY=VALUE[,KEY=VALUE…]`` (repeatable) measures one
service per NAME, each its own process and its own Valkey, rows labelled ``[NAME]``; an
unknown key stops the run before anything is measured. ``--workers N`` (N > 1) measures each
variant with 1 worker and with N workers (``wrk -t2``) and prints the N/1 ratio;
``--cluster`` runs each service on a 3-primary Valkey Cluster instead of its own Valkey.

Needs ``wrk`` (Debian package ``wrk``). Every server binds 127.0.0.1 only; each wrk run is
bounded by ``--duration``; all processes are stopped at the end. ``--py-spy DIR`` also records
the service's stacks during each room target (``pip install py-spy``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
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
from typing import Any

import aiohttp
import redis
import tomli_w

from guichet import auth
from guichet.config import ConfigError, SecurityConfig
from guichet.embedded import (
    EmbeddedCluster,
    EmbeddedValkey,
    free_port,
    running_url,
    set_parent_death_signal,
)
from loadtest import shop_prep
from loadtest.harness import (
    ROOT,
    GuichetServer,
    Issuer,
    draw_spec,
    merge_config,
    parse_assignment,
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
#: The issue's goals (issue 16): same-run ratios to the bare endpoint, one worker, ``wrk -c64``.
STATUS_GOAL, JOIN_GOAL, REGISTER_GOAL = 0.8, 0.6, 0.6
HOLD_GOAL, FIRST_SIGHT_GOAL, CONFIRM_GOAL = 0.4, 0.25, 0.15
DRAW = "bench"
#: A pool target (confirm) is grown before each run to cover this many times its rate so far
#: over the run's seconds; its first estimate is a 1 s probe on ``PROBE_LINES`` fresh lines.
POOL_MARGIN, PROBE_LINES = 2.0, 4000


@contextlib.contextmanager
def _process(args: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(  # stops with the runner even when the runner is SIGKILLed
        args, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        preexec_fn=set_parent_death_signal,
    )  # fmt: skip
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
        threads: int = 1,
        strict: bool = True,
    ) -> WrkRun:
        """One wrk run; RuntimeError on a non-2xx answer when ``strict``."""
        duration = self.duration_s if duration_s is None else duration_s
        command = [
            "wrk", f"-t{threads}", f"-c{self.connections}", f"-d{duration}s", "--latency"
        ]  # fmt: skip
        if script_args:
            command += ["-s", str(script), url, "--", *script_args]
        else:
            command.append(url)
        out = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=True,
            timeout=duration + 60,
            env={**os.environ, "WRK_THREADS": str(threads)},  # the Lua scripts interleave
        ).stdout
        result = parse_wrk(out)
        if result.non_2xx and strict:
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
def _py_spy(
    pid: int | None, out: Path | None, name: str, seconds: int, workers: int = 1
) -> Iterator[None]:
    """Record the server's stacks (collapsed format) while the block runs, if asked."""
    if out is None or pid is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.txt"
    proc = subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--rate", "250", "--format", "raw", "--idle",
         "--duration", str(seconds), "--output", str(target),
         *(["--subprocesses"] if workers > 1 else [])],
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
    pool: int = 0  # first sight, confirm: lines in the file; every request takes an unused one
    offset: int = 0  # pool targets: the next unused line of the file
    script: Path = ROTATE_LUA  # the wrk Lua script
    threads: int = 1  # wrk threads (2 against a service of several workers)
    pid: int | None = None  # the service's process (py-spy)
    grow: Callable[[int], None] | None = None  # pool targets: append this many fresh lines
    rate: float = 0.0  # pool targets that grow: the highest rate seen (req/s)
    probe: str = ""  # pool targets that grow: what the probe measured

    def with_offset(self) -> list[str]:
        """The script's arguments, starting at the next unused line of a pool."""
        method = ["POST"] if self.script == ROTATE_LUA else []
        return [*self.script_args, str(self.offset), *method]

    def used(self, run: WrkRun, connections: int) -> int:
        """Lines a run may have taken: wrk counts answers, not requests sent, and its threads
        (interleaved over the lines) need not go at the same pace."""
        spread = run.requests // 4 if self.threads > 1 else 0
        return run.requests + spread + 4 * connections

    def ensure(self, seconds: float, connections: int) -> None:
        """Grow the pool to cover ``seconds`` at :data:`POOL_MARGIN` times the rate so far."""
        if self.grow is None:
            return
        need = self.offset + math.ceil(POOL_MARGIN * self.rate * seconds) + 8 * connections
        if need > self.pool:
            self.grow(need - self.pool)
            self.pool = need


def measure(wrk: Wrk, t: Target, spy: Path | None) -> Row:
    """Warm up, then measure ``t`` (pool targets never reuse a line; a growing pool is sized
    from a 1 s probe and then from the highest rate seen)."""
    if t.grow is not None and not t.rate:
        t.ensure(0, wrk.connections)
        if t.pool < t.offset + PROBE_LINES:
            t.grow(t.offset + PROBE_LINES - t.pool)
            t.pool = t.offset + PROBE_LINES
        probe = wrk.run(t.url, 1, t.with_offset(), t.script, t.threads, strict=False)
        t.rate = probe.rps
        t.probe = f"probe {probe.rps:,.0f}/s"
        t.offset += t.used(probe, wrk.connections)
    t.ensure(wrk.warmup_s + wrk.duration_s, wrk.connections)
    if not t.pool:
        wrk.run(t.url, wrk.warmup_s, t.script_args, t.script, t.threads)
    else:
        warm = wrk.run(t.url, wrk.warmup_s, t.with_offset(), t.script, t.threads)
        t.offset += t.used(warm, wrk.connections)
        t.rate = max(t.rate, warm.rps)
        t.ensure(wrk.duration_s, wrk.connections)
    before = t.issued() if t.issued else 0
    args = t.with_offset() if t.pool else t.script_args
    with _py_spy(t.pid if t.spy_name else None, spy, t.spy_name, wrk.duration_s, t.threads):
        r = wrk.run(t.url, None, args, t.script, t.threads)
    row = Row(t.name, r.rps, r.p50_ms, r.p99_ms, goal=t.goal)
    if t.issued:
        new = t.issued() - before
        if t.expect_new == "none":
            row.note = f"{new} new tickets (0 expected: every join a repeat)"
        else:
            row.note = f"{new} new tickets for {r.requests} answers counted by wrk"
    if t.pool:
        fresh = max(0, min(t.used(r, wrk.connections), t.pool - t.offset))
        t.offset += t.used(r, wrk.connections)
        t.rate = max(t.rate, r.rps)
        notes = [row.note] if row.note else []
        if fresh < t.used(r, wrk.connections):
            notes.append(
                f"POOL TOO SMALL: up to {t.used(r, wrk.connections) - fresh} requests reused "
                "their line (raise --first-sight-tokens)"
            )
        elif t.grow is not None:
            notes.append(
                f"every measured request a first one ({t.pool:,} lines prepared, "
                f"{t.probe}, {t.offset:,} used)"
            )
        row.note = "; ".join(notes)
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


@dataclass
class Variant:
    """One service measured: its label, its config overrides, its workers."""

    label: str
    overrides: dict[str, Any] = field(default_factory=dict)
    workers: int = 1
    #: Another checkout whose ``server/`` the service runs (``NAME@DIR``: e.g. the commit
    #: before a change, measured in the same run as this one); None: this checkout.
    source: Path | None = None

    def prefix(self, name: str) -> str:
        return f"[{self.label}] {name}" if self.label else name


def parse_compare(text: str) -> Variant:
    """``NAME[@DIR]:KEY=VALUE[,KEY=VALUE…]`` or ``NAME@DIR`` -> a Variant (ValueError on a
    bad form). ``@DIR``: the service runs the ``server/`` of the checkout DIR."""
    head, sep, rest = text.partition(":")
    label, at, source = head.partition("@")
    if not label.strip() or (at and not source.strip()) or (not at and not rest.strip()):
        raise ValueError(f"--compare {text!r}: expected NAME[@DIR]:KEY=VALUE[,KEY=VALUE]")
    src: Path | None = None
    if at:
        src = Path(source.strip()).resolve()
        if not (src / "server" / "guichet" / "__main__.py").is_file():
            raise ValueError(f"--compare {text!r}: {src} is not a Guichet checkout")
    overrides: dict[str, Any] = {}
    for item in rest.split(",") if sep and rest.strip() else []:
        overrides = merge_config(overrides, parse_assignment(item))
    return Variant(label.strip(), overrides, source=src)


def variants_of(args: argparse.Namespace) -> list[Variant]:
    """The services to measure: ``--compare`` ones (or one), each laid over
    ``--service-config``; with ``--workers N`` > 1, each with 1 and with N workers."""
    common: dict[str, Any] = {}
    for item in args.service_config or []:
        common = merge_config(common, parse_assignment(item))
    base = [parse_compare(c) for c in args.compare or []] or [Variant("")]
    if len({v.label for v in base}) < len(base):
        raise ValueError("--compare names must differ")
    for v in base:
        v.overrides = merge_config(common, v.overrides)
    if args.workers <= 1:
        return base
    return [
        Variant(f"{v.label} {n}w".strip(), v.overrides, n, v.source)
        for v in base
        for n in (1, args.workers)
    ]


@dataclass
class Service:
    """A variant's running service and what its targets need."""

    variant: Variant
    server: GuichetServer
    url: str | None = None  # its Valkey (standalone); None on a Cluster (the config's seeds)


def service_targets(
    svc: Service, args: argparse.Namespace, issuer: Issuer, tmp: Path, files: dict[str, Path]
) -> list[Target]:
    """The room, draw and shop targets of one service (room, draw and sale prepared)."""
    server, v = svc.server, svc.variant
    work = tmp / f"prep-{id(svc)}"
    work.mkdir()
    tickets_file = prepare_room(server, issuer, files["tokens"], work)
    settings = server.settings()
    started = time.monotonic()
    holders = [f"bench-{i}" for i in range(args.accounts)]
    hold_body = shop_prep.prepare(svc.url, settings, holders, work)
    confirms = shop_prep.ConfirmPool(svc.url, settings, issuer, work / "confirms.txt")
    if args.confirms:
        confirms.grow(args.confirms)
    print(f"shop prepared in {time.monotonic() - started:.1f} s", flush=True)

    def issued() -> int:
        return int(room_stats(server.url, issuer, ROOM)["issued"])

    threads = 2 if v.workers > 1 else 1
    room = f"{server.url}/v1/rooms/{ROOM}"
    slug = v.label.replace(" ", "-")
    targets = [
        Target(
            v.prefix(f"room status poll ({args.accounts:,} tickets rotated)"),
            f"{room}/status",
            [str(tickets_file), "X-Queue-Ticket"],
            goal=STATUS_GOAL,
            spy_name=f"{slug}status".lstrip("-"),
        ),
        Target(
            v.prefix(f"room join, repeat ({args.accounts:,} verified tokens rotated)"),
            f"{room}/join",
            [str(files["tokens"]), "Authorization", "Bearer ", "0", "POST"],
            goal=JOIN_GOAL,
            spy_name=f"{slug}-join-repeat".lstrip("-"),
            issued=issued,
            expect_new="none",
        ),
    ]
    if args.first_sight_tokens:
        targets.append(
            Target(
                v.prefix("room join, first sight (new token + new ticket each)"),
                f"{room}/join",
                [str(files["first-sight"]), "Authorization", "Bearer "],
                goal=FIRST_SIGHT_GOAL,
                spy_name=f"{slug}-join-first-sight".lstrip("-"),
                issued=issued,
                expect_new="all",
                pool=args.first_sight_tokens,
            )
        )
    put_draw(server.url, issuer, DRAW, draw_spec(closes_in_s=3 * 3600))
    holds = f"{server.url}/v1/sales/{shop_prep.SALE}/holds"
    targets += [
        Target(
            v.prefix(f"draw register ({args.accounts:,} accounts rotated: 201 once, then 200)"),
            f"{server.url}/v1/draws/{DRAW}/entries",
            [str(files["tokens"]), "Authorization", "Bearer ", "0", "POST", str(files["consent"])],
            goal=REGISTER_GOAL,
            spy_name=f"{slug}-register".lstrip("-"),
        ),
        Target(
            v.prefix("shop availability (3 sessions, from the worker's snapshot)"),
            f"{server.url}/v1/sales/{shop_prep.SALE}/availability",
        ),
        Target(
            v.prefix(
                f"shop hold, a pack of 3 ({args.accounts:,} accounts rotated, window checked)"
            ),
            holds,
            ["hold", str(files["tokens"]), str(hold_body)],
            goal=HOLD_GOAL,
            spy_name=f"{slug}-hold".lstrip("-"),
            script=SHOP_LUA,
        ),
        Target(
            v.prefix("shop confirm (each a held pack; answers after the AOF fsync, WAITAOF)"),
            holds,
            ["confirm", str(confirms.file)],
            goal=CONFIRM_GOAL,
            spy_name=f"{slug}-confirm".lstrip("-"),
            script=SHOP_LUA,
            pool=confirms.size,
            grow=confirms.grow,
        ),
    ]
    for t in targets:
        t.threads, t.pid = threads, server.pid
    return targets


def start_service(
    stack: contextlib.ExitStack, v: Variant, tmp: Path, key_file: Path, cluster: bool
) -> Service:
    """The variant's ``guichet serve``: its own embedded Valkey, or a 3-primary Cluster."""
    work = tmp / f"service-{v.label.replace(' ', '-') or 'main'}"
    overrides = v.overrides
    if cluster:
        built = stack.enter_context(EmbeddedCluster(work / "cluster"))
        overrides = merge_config(overrides, {"redis": {"cluster_seeds": built.seeds}})
    server = GuichetServer(
        work, workers=v.workers, security={"dev_issuer_key_file": str(key_file)},
        overrides=overrides, source=v.source,
    )  # fmt: skip
    server.prepare()
    stack.enter_context(server)
    url = None if cluster else running_url(server.settings().redis.data_dir)
    if not cluster and url is None:
        raise RuntimeError(f"no embedded Valkey for {v.label or 'the service'}")
    return Service(v, server, url)


def check_config(variants: list[Variant], tmp: Path) -> None:
    """Every variant's config loads (an unknown or invalid key raises ConfigError) before any
    server, Valkey or token is made."""
    for i, v in enumerate(variants):
        server = GuichetServer(tmp / f"check-{i}", workers=v.workers, overrides=v.overrides)
        server.workdir.mkdir(parents=True)
        server.config_file.write_text(tomli_w.dumps(server.config()))
        server.settings()


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
        default=3,
        help="measure every target this many times, interleaved; report medians (default 3)",
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
        "--confirms",
        type=int,
        default=0,
        help="held packs prepared up front for 'shop confirm' (default 0: the pool is sized "
        "from a 1 s probe and grown before each run, so every measured confirm is a first one)",
    )
    parser.add_argument(
        "--service-config",
        action="append",
        metavar="KEY=VALUE",
        help="a config value of every measured service, dotted TOML key (repeatable), "
        "e.g. redis.data_plane=pool",
    )
    parser.add_argument(
        "--compare",
        action="append",
        metavar="NAME:KEY=VALUE[,KEY=VALUE]",
        help="measure one more service (own process, own Valkey) with these values, rows "
        "labelled [NAME] (repeatable), e.g. --compare before:redis.data_plane=pool "
        "--compare after:redis.data_plane=multiplex",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="N > 1: measure every service with 1 and with N workers (wrk -t2), print N/1",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="run each service on a 3-primary Valkey Cluster instead of its own Valkey",
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
    try:
        variants = variants_of(args)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2

    wrk = Wrk(args.duration, args.connections, args.warmup)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="guichet-bench-")))
        try:
            check_config(variants, tmp)
        except ConfigError as exc:
            print(f"bench: the service's config is refused: {exc}", file=sys.stderr)
            return 2
        valkey = stack.enter_context(EmbeddedValkey(tmp / "valkey"))

        # Tokens first, before any server runs (minting is CPU work); one issuer key for all
        # the services, so that the same tokens serve every variant.
        key_file = tmp / "dev-issuer.pem"
        sec = SecurityConfig()
        key = auth.load_or_create_dev_key(str(key_file))
        issuer = Issuer(key, sec.issuer, sec.audience, sec.admin_audience)
        files = {n: tmp / f"{n}.txt" for n in ("tokens", "first-sight")}
        started = time.monotonic()
        mint_tokens(issuer, "bench", args.accounts, files["tokens"])
        mint_tokens(issuer, "fresh", args.first_sight_tokens, files["first-sight"])
        minted = args.accounts + args.first_sight_tokens
        print(f"minted {minted:,} tokens in {time.monotonic() - started:.1f} s", flush=True)
        dummy = tmp / "dummy.txt"  # same Lua script on the baseline: what it costs wrk
        dummy.write_text("\n".join(f"value-{i:06d}-" + "x" * 140 for i in range(10_000)) + "\n")
        files["consent"] = tmp / "consent.json"
        files["consent"].write_text('{"accept_rules": true, "accept_data_processing": true}')

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
        services = [start_service(stack, v, tmp, key_file, args.cluster) for v in variants]
        wait_ready_plain(f"{base_url}/ok")
        wait_ready(app_url)
        for t in ladder:
            wait_ready_plain(t.url)

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
        ]
        for svc in services:
            targets += service_targets(svc, args, issuer, tmp, files)
        targets.append(Target("bare aiohttp+uvloop /ok, again at the end", f"{base_url}/ok"))
        if args.only:  # the baseline always; then only the targets asked for
            targets = [targets[0], *(t for t in targets[1:-1]
                                     if any(word in t.name for word in args.only))]  # fmt: skip

        rounds: list[list[Row]] = []
        for n in range(args.rounds):
            spy = args.py_spy if n == 0 else None
            rows = [measure(wrk, t, spy) for t in targets]
            rounds.append(with_ratios(rows, rows[0].rps))
            if args.rounds > 1:
                print(f"round {n + 1}/{args.rounds} done", flush=True)
        for svc in services:
            code = svc.server.stop()
            if code not in (0, None):
                print(f"guichet serve ({svc.variant.label or 'service'}) exited with code "
                      f"{code}:\n{svc.server.log_tail()}")  # fmt: skip
        redis_side = redis_benchmark(valkey.port, args.connections)

    rows = combine_rounds(rounds)
    print()
    rounds_text = f", median of {args.rounds} interleaved rounds" if args.rounds > 1 else ""
    where = "a 3-primary Valkey Cluster" if args.cluster else "its own embedded Valkey"
    print(
        f"{date.today()}  wrk -c{args.connections} -d{args.duration}s --latency "
        f"(warm-up {args.warmup} s each), -t1 and one worker per server unless labelled "
        f"Nw (-t2), each service on {where}, same run{rounds_text}"
    )
    for v in variants:
        if v.overrides:
            print(f"  {v.label or 'service'}: {tomli_w.dumps(v.overrides).strip()!r}")
    print(ratio_table(rows))
    for row in rows:
        if row.note:
            print(f"  {row.name}: {row.note}")
    for line in worker_scaling(rows, variants):
        print(line)
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


def worker_scaling(rows: Sequence[Row], variants: Sequence[Variant]) -> list[str]:
    """``[X Nw] target`` against ``[X 1w] target``: aggregate throughput of N workers over 1."""
    by_name = {r.name: r for r in rows}
    lines = []
    for v in variants:
        if v.workers <= 1:
            continue
        one = v.label.rsplit(" ", 1)[0] + " 1w" if " " in v.label else "1w"
        for r in rows:
            prefix = f"[{v.label}] "
            if r.name.startswith(prefix):
                single = by_name.get(f"[{one}] {r.name[len(prefix) :]}")
                if single is not None and single.rps > 0:
                    lines.append(f"  {r.name}: {r.rps / single.rps:.2f}x the 1-worker req/s")
    return (["workers, aggregate throughput against 1 worker (same run):", *lines]
            if lines else [])  # fmt: skip


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
