"""Benchmark of ``guichet draw run``: time and peak memory to rank and store N entries.

    python -m loadtest.draw_bench --entries 1000000 10000000

For each size: a private Valkey (AOF on, as the embedded default), N entries written
straight into the draw's entry hashes (seeding is not measured), a commitment, the close,
then the run in a fresh process (so its peak memory is its own): wall time, the peak RSS of
that process and of its largest worker, and Valkey's own memory for context. A finished run
is checked: ranked count = N and the stored ranking chunks are all there.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import redis

from guichet.config import Settings, load_settings
from guichet.draw import model, run, seal
from guichet.draw.service import SCRIPTS, Draws
from guichet.embedded import EmbeddedValkey
from guichet.signing import Keyring
from guichet.store.client import connect
from guichet.store.keys import DrawKeys, entry_bucket
from guichet.units import US_PER_S

SEED_BATCH = 2000  # field/value pairs per HSET while seeding


@dataclass
class Result:
    entries: int
    seconds: float
    rss_main_mib: float
    rss_worker_mib: float
    valkey_mib: float
    processes: int
    phases: dict[str, float]


def seed(client: redis.Redis, draw: str, n: int) -> None:
    """N entries (1 in 10 in the priority stratum), straight into the entry hashes."""
    buckets: dict[str, list[bytes]] = {}
    pipe = client.pipeline(transaction=False)
    pending = 0
    stamp = b":1790000000000000"
    k = DrawKeys(draw)
    for i in range(n):
        account = f"acct-{i:09d}"
        key = k.entries(entry_bucket(account))
        fields = buckets.setdefault(key, [])
        fields += (account.encode(), (b"club" if i % 10 == 0 else b"general") + stamp)
        if len(fields) >= 2 * SEED_BATCH:
            pipe.execute_command("HSET", key, *fields)  # type: ignore[no-untyped-call]
            fields.clear()
            pending += 1
            if pending >= 64:
                pipe.execute()
                pending = 0
    for key, fields in buckets.items():
        if fields:
            pipe.execute_command("HSET", key, *fields)  # type: ignore[no-untyped-call]
    pipe.execute()
    client.hset(k.counts, mapping={"club": (n + 9) // 10, "general": n - (n + 9) // 10})


def _run_child(url: str, workdir: str, processes: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    settings = load_settings(Path(workdir) / "guichet.toml", environ={})
    start = time.perf_counter()
    phases: dict[str, float] = {}
    transcript, _ = run.run(
        settings.redis,
        url,
        "bench",
        beacon=b"",
        seal_key=seal.seal_key(settings.draws),
        signer=Keyring(settings.draws.signing_key_dir),
        processes=processes,
        scan_batch=settings.draws.scan_batch,
        timings=phases,
    )
    seconds = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out.put((seconds, own, workers, transcript.entries, phases))


def measure(n: int, processes: int) -> Result:
    with tempfile.TemporaryDirectory(prefix="guichet-draw-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "guichet.toml").write_text(
            f'[draws]\nseal_key_file = "{workdir / "seal"}"\n'
            f'signing_key_dir = "{workdir / "keys"}"\n'
        )
        with EmbeddedValkey(workdir / "valkey") as server:
            client = redis.Redis.from_url(server.url)
            settings = load_settings(workdir / "guichet.toml", environ={})
            now = datetime.now(UTC)
            spec = model.DrawSpec(
                registration_opens_at=now - timedelta(days=1),
                registration_closes_at=now + timedelta(hours=1),
                strata=["club", "general"],
            )

            t = time.perf_counter()
            seed(client, "bench", n)
            print(f"  seeded {n:,} entries in {time.perf_counter() - t:.1f} s", file=sys.stderr)
            asyncio.run(configure(settings, server.url, spec))
            seconds, micros = client.time()
            client.hset(DrawKeys("bench").cfg, "closes_us", seconds * US_PER_S + micros)
            context = multiprocessing.get_context("spawn")
            out = context.Queue()
            child = context.Process(target=_run_child, args=(server.url, tmp, processes, out))
            child.start()
            elapsed, own, workers, ranked, phases = out.get(timeout=600)
            child.join(60)
            if ranked != n or int(client.hget(DrawKeys("bench").cfg, "ranked") or 0) != n:
                raise SystemExit(f"run ranked {ranked}, expected {n}")
            info = client.info("memory")
            valkey = info["used_memory_peak"] / 2**20
            return Result(n, elapsed, own, workers, valkey, processes, phases)


async def configure(settings: Settings, url: str, spec: model.DrawSpec) -> None:
    """The draw, and its commitment before the close."""
    store = connect(settings.redis, url=url, scripts=SCRIPTS)
    try:
        await store.scripts.load_all()
        draws = Draws(store)
        await draws.put("bench", spec)
        c = await draws.commit("bench", seal.seal_key(settings.draws))
        assert c.code == "ok", c
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    results = []
    for n in args.entries:
        print(f"draw run benchmark: {n:,} entries, {args.processes} processes", file=sys.stderr)
        r = measure(n, args.processes)
        results.append(r)
        print(
            f"{r.entries:>11,} entries  {r.seconds:6.1f} s  "
            f"{r.entries / r.seconds / 1e6:5.2f} M entries/s  "
            f"peak RSS run {r.rss_main_mib:,.0f} MiB + largest worker {r.rss_worker_mib:,.0f} MiB"
            f"  (valkey peak {r.valkey_mib:,.0f} MiB)\n"
            f"{'':>20}phases: " + ", ".join(f"{k} {v:.1f}" for k, v in r.phases.items())
        )
    if args.json:
        Path(args.json).write_bytes(msgspec.json.encode(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
