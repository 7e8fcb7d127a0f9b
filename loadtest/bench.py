"""Benchmark runner: throughput of Guichet endpoints as ratios to a bare aiohttp+uvloop
endpoint measured in the same run, on the same machine, with the same wrk settings.

    python -m loadtest.bench [--duration 10] [--connections 64]

Needs ``wrk`` (Debian package ``wrk``). Every server binds 127.0.0.1 only; each wrk run is
bounded by ``--duration``; all processes are stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from guichet.embedded import EmbeddedValkey, free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float


def _wait_http(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not come up")


@contextlib.contextmanager
def _process(args: list[str]) -> Iterator[None]:
    proc = subprocess.Popen(args, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _latency_ms(text: str, pct: str) -> float:
    match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(name: str, url: str, duration_s: int, connections: int) -> Result:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration_s + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:
        raise RuntimeError(f"{name}: non-2xx responses:\n{out}")
    return Result(name, rps, _latency_ms(out, "50"), _latency_ms(out, "99"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per target")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2

    results: list[Result] = []
    with (
        tempfile.TemporaryDirectory(prefix="guichet-bench-") as tmp,
        EmbeddedValkey(Path(tmp) / "valkey") as valkey,
    ):
        base_port, app_port = free_port(), free_port()
        with (
            _process([sys.executable, "-m", "loadtest.baseline_app", str(base_port)]),
            _process([sys.executable, "-m", "loadtest.bench_app", str(app_port), valkey.url]),
        ):
            _wait_http(base_port)
            _wait_http(app_port)
            targets = [
                ("bare aiohttp+uvloop /ok", f"http://127.0.0.1:{base_port}/ok"),
                (
                    "guichet /healthz (middlewares, no Redis)",
                    f"http://127.0.0.1:{app_port}/healthz",
                ),
                ("guichet one EVALSHA per request", f"http://127.0.0.1:{app_port}/bench/evalsha"),
            ]
            for name, url in targets:
                wrk(name, url, args.warmup, args.connections)
                results.append(wrk(name, url, args.duration, args.connections))

    base = results[0].rps
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s, 1 worker each, same run")
    print(f"{'target':45} {'req/s':>10} {'ratio':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(f"{r.name:45} {r.rps:10.0f} {r.rps / base:6.2f}x {r.p50_ms:8.2f} {r.p99_ms:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
