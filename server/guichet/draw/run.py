"""``guichet draw run``: rank every entry of a closed draw and publish the transcript.

Steps, each safe to repeat after a kill:

1. **Check** (Redis state): registration closed, a commitment made before the close, and, when
   an earlier attempt started, the same beacon.
2. **Scan and key** in ``processes`` worker processes: each takes entry hashes (buckets) in
   turn, streams them with HSCAN in batches, hashes every id with the draw key and returns the
   bucket sorted in rank order (numpy arrays: bounded, compact memory).
3. **Merge** the sorted buckets, digest the entry set, and ``begin.lua`` freezes the beacon,
   count and entry-set digest (a resumed run must find the same).
4. **Store** the ranking as chunks of ids (``HSETNX``: a chunk stored before a kill is kept,
   never doubled), hashing them into the ranking digest on the way.
5. **Finish**: ``finish.lua`` publishes the transcript, signed with the draw keyring
   (``draws.signing_key_dir``), with the public key that signed it, once every chunk is there.

The entry set cannot change after the close (registration and withdrawal scripts refuse), so
a re-run computes the same ranking; ``begin.lua`` checks it.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, assert_never

import msgspec
import numpy as np

from guichet import __version__, wire
from guichet.audit import acts
from guichet.audit.act import Act
from guichet.config import RedisConfig
from guichet.draw import audit, model, ranking, seal
from guichet.draw.refusals import BeginCode, FinishCode
from guichet.embedded import set_parent_death_signal
from guichet.refusals import code_of
from guichet.signing import Signer
from guichet.store import sync
from guichet.store.keys import ENTRY_BUCKETS, DrawKeys
from guichet.store.scripts import LuaScript
from guichet.units import US_PER_S

log = logging.getLogger("guichet.draw")
BEGIN = LuaScript("guichet.draw", "begin.lua")
FINISH = LuaScript("guichet.draw", "finish.lua")
CHUNK = 10_000  # ids per stored ranking chunk
_PIPELINE_CHUNKS = 8

#: progress(phase, done, total): 'scan' counts buckets, 'store' counts chunks.
Progress = Callable[[str, int, int], None]


class RunError(Exception):
    """The draw cannot run (yet); the message says why and what to do."""


@dataclass(frozen=True)
class Scan:
    """What a worker process needs to key its buckets (pickled to it)."""

    redis: RedisConfig
    where: str | tuple[str, ...]
    draw: str
    strata: tuple[str, ...]
    key: bytes
    batch: int


_clients: dict[Any, sync.SyncClient] = {}


def _worker_init(parent: int) -> None:
    """In each worker: die with the run (SIGKILL from the kernel when the parent goes, even by
    ``kill -9``), so no worker keeps scanning, nor keeps the resource tracker's pipe open,
    after it. A parent gone before this ran is caught by the ppid check."""
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _client(job: Scan) -> sync.SyncClient:
    client = _clients.get(job.where)
    if client is None:
        client = _clients[job.where] = sync.connect(job.redis, job.where)
    return client


def scan_bucket(job: Scan, bucket: int) -> tuple[ranking.Keyed, np.ndarray]:
    """One entry hash, keyed and sorted in rank order, with its id order (runs in a worker
    process, so that the parent only merges)."""
    ids, positions = read_bucket(_client(job), job.draw, job.strata, bucket, job.batch)
    keyed = ranking.keyed(ids, positions, job.key)
    ranked = keyed.take(ranking.order(keyed))
    return ranked, ranking.by_id(ranked.ids)


def read_bucket(
    client: sync.SyncClient, draw: str, strata: tuple[str, ...], bucket: int, batch: int
) -> tuple[list[bytes], np.ndarray]:
    """One entry hash streamed with HSCAN: (ids, stratum positions)."""
    name = DrawKeys(draw).entries(bucket)
    fields: dict[bytes, bytes] = {}
    cursor = 0
    while True:  # HSCAN may repeat a field while the hash rehashes: the dict keeps one
        cursor, found = client.hscan(name, cursor, count=batch)
        fields.update(found)  # type: ignore[arg-type]
        if cursor == 0:
            break
    values = np.array(list(fields.values()), dtype=bytes) if fields else np.empty(0, "S1")
    positions = np.full(values.shape[0], 255, dtype=np.uint8)
    for position, stratum in enumerate(strata):
        positions[np.char.startswith(values, stratum.encode() + b":")] = position
    if (positions == 255).any():
        bad = values[positions == 255][0].decode()
        raise RunError(f"an entry names stratum {bad.partition(':')[0]!r}, not in the draw")
    return list(fields), positions


@dataclass(frozen=True)
class Plan:
    """The draw's state read before a run."""

    spec: model.DrawSpec
    commitment: str
    committed_us: int
    closes_us: int
    sealed: bytes
    run_beacon: str | None
    transcript: model.Transcript | None


def plan(client: sync.SyncClient, draw: str) -> Plan:
    k = DrawKeys(draw)
    names = ["spec", "commitment", "committed_us", "closes_us", "sealed_seed", "run_beacon",
             "transcript"]  # fmt: skip
    raw: dict[str, Any] = dict(zip(names, client.hmget(k.cfg, names), strict=True))
    if raw["spec"] is None:
        raise RunError(f"no draw {draw!r}")
    if raw["transcript"] is not None:
        transcript = msgspec.json.decode(raw["transcript"], type=model.Transcript)
    else:
        transcript = None
    if raw["commitment"] is None:
        raise RunError(
            f"draw {draw!r} has no commitment; `guichet draw commit` must run before "
            "registration closes, and a draw without one cannot run"
        )
    return Plan(
        spec=msgspec.json.decode(raw["spec"], type=model.DrawSpec),
        commitment=raw["commitment"].decode(),
        committed_us=int(raw["committed_us"]),
        closes_us=int(raw["closes_us"]),
        sealed=raw["sealed_seed"],
        run_beacon=None if raw["run_beacon"] is None else raw["run_beacon"].decode(),
        transcript=transcript,
    )


def _now_us(client: sync.SyncClient) -> int:
    seconds, micros = client.time()
    return int(seconds) * US_PER_S + int(micros)


def run(
    redis_cfg: RedisConfig,
    where: str | tuple[str, ...],
    draw: str,
    *,
    beacon: bytes,
    seal_key: bytes,
    signer: Signer,
    processes: int = 2,
    scan_batch: int = 5000,
    chunk: int = CHUNK,
    progress: Progress | None = None,
    timings: dict[str, float] | None = None,
    act: Act | None = None,
) -> tuple[model.Transcript, bool]:
    """Run (or finish, or just return) the draw: (transcript, True when this call ran it).
    ``timings`` receives the seconds spent per phase (scan, merge, store, finish);
    ``begin.lua``, the run's first script that changes state, writes the audit record of
    ``act`` (outcome 'started', or 'resumed': a run resumed after a kill is an act of its
    own)."""
    clock = _Clock(timings)
    client = sync.connect(redis_cfg, where)
    k = DrawKeys(draw)
    report = progress or (lambda phase, done, total: None)
    p = plan(client, draw)
    if p.transcript is not None:
        return p.transcript, False
    if p.committed_us >= p.closes_us:
        raise RunError("the commitment was made after registration closed: the draw cannot run")
    if _now_us(client) < p.closes_us:
        raise RunError(f"registration is open until {wire.rfc3339(p.closes_us / US_PER_S)}")
    if p.run_beacon is not None and p.run_beacon != beacon.hex():
        raise RunError(
            f"this draw's run started with beacon {p.run_beacon!r}; resume it with the same "
            "--beacon"
        )
    seed = seal.unseal(seal_key, draw, p.sealed, p.commitment)
    strata = tuple(p.spec.strata)
    job = Scan(redis_cfg, where, draw, strata, model.draw_key(draw, seed, beacon), scan_batch)

    with concurrent.futures.ProcessPoolExecutor(
        processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(os.getpid(),),
    ) as pool:
        ranked, set_digest = _scan(pool, job, client, report, clock)
    total = len(ranked)
    ks, args = acts.keys_args(
        act or acts.internal("draw.run", f"draw:{draw}"),
        [k.cfg],
        [beacon.hex(), total, set_digest, chunk],
    )
    code, started, detail = sync.call(client, BEGIN, ks, args)
    begun: BeginCode = code_of(code, BeginCode, "begin")
    clock.lap("merge")
    match begun:
        case "started" | "resumed":
            pass
        case "set_differs":
            raise RunError(
                f"the entry set differs from the one frozen when this run started "
                f"({detail.decode()} entries): refusing to publish another ranking"
            )
        case "ran" | "unknown" | "uncommitted" | "open" | "beacon_differs" | "chunk_differs":
            raise RunError(f"the draw cannot run: {begun}")
        case _:
            assert_never(begun)

    chunks = -(-total // chunk)
    ranking_digest = _store(client, k, ranked.ids, chunk, report)
    clock.lap("store")
    counts = np.bincount(ranked.strata, minlength=len(strata)).tolist()
    transcript = model.Transcript(
        draw=draw,
        commitment=p.commitment,
        committed_at=wire.rfc3339(p.committed_us / US_PER_S),
        registration_closes_at=wire.rfc3339(p.closes_us / US_PER_S),
        seed=seed.hex(),
        beacon=beacon.hex(),
        strata=list(strata),
        entries=total,
        entries_by_stratum=dict(zip(strata, counts, strict=True)),
        entry_set_digest=set_digest,
        ranking_digest=ranking_digest,
        ran_at=wire.rfc3339(int(started) / US_PER_S),
        software_version=__version__,
    )
    transcript = audit.sign(transcript, signer)
    code, published = sync.call(
        client,
        FINISH,
        [k.cfg, k.ranking],
        [chunks, total, msgspec.json.encode(transcript), json.dumps(signer.jwk)],
    )
    finished: FinishCode = code_of(code, FinishCode, "finish")
    match finished:
        case "ok" | "ran":
            pass
        case "incomplete":
            raise RunError(f"only {published.decode()} of {chunks} ranking chunks are stored")
        case "not_started":
            raise RunError(f"the draw cannot finish: {finished}")
        case _:
            assert_never(finished)
    client.hset(k.cfg, "run_progress", f"done:{chunks}:{chunks}")
    clock.lap("finish")
    log.info("draw ran", extra={"draw": draw, "entries": total, **clock.seconds})
    return msgspec.json.decode(published, type=model.Transcript), finished == "ok"


def _scan(
    pool: concurrent.futures.Executor,
    job: Scan,
    client: sync.SyncClient,
    report: Progress,
    clock: _Clock,
) -> tuple[ranking.Keyed, str]:
    """Every bucket keyed by the workers, merged: (entries in rank order, entry-set digest)."""
    parts: list[ranking.Keyed] = []
    id_orders: list[np.ndarray] = []
    cfg = DrawKeys(job.draw).cfg
    futures = [pool.submit(scan_bucket, job, b) for b in range(ENTRY_BUCKETS)]
    for future in concurrent.futures.as_completed(futures):
        part, id_order = future.result()
        parts.append(part)
        id_orders.append(id_order)
        report("scan", len(parts), ENTRY_BUCKETS)
        client.hset(cfg, "run_progress", f"scan:{len(parts)}:{ENTRY_BUCKETS}")
    clock.lap("scan")
    merged = ranking.concat(parts)
    id_order = ranking.merge_by_id(merged.ids, id_orders)
    set_digest = ranking.entry_set_digest(merged, job.strata, id_order)
    del parts, id_orders, id_order
    return merged.take(ranking.order(merged)), set_digest


def _store(
    client: sync.SyncClient, k: DrawKeys, ids: np.ndarray, chunk: int, report: Progress
) -> str:
    """Write the ranking's chunks not stored yet (HSETNX); returns the ranking digest."""
    stored = {int(x) for x in client.hkeys(k.ranking)}
    chunks = -(-ids.shape[0] // chunk)
    digest = hashlib.sha256()
    pipe = client.pipeline(transaction=False)
    pending = 0
    for number, blob in enumerate(ranking.chunks(ids, chunk)):
        digest.update(blob)
        if number not in stored:
            pipe.hsetnx(k.ranking, str(number), blob)
            pending += 1
        if pending >= _PIPELINE_CHUNKS or number == chunks - 1:
            pipe.hset(k.cfg, "run_progress", f"store:{number + 1}:{chunks}")
            pipe.execute()
            pending = 0
            report("store", number + 1, chunks)
    return digest.hexdigest()


class _Clock:
    def __init__(self, into: dict[str, float] | None) -> None:
        self.seconds = into if into is not None else {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[f"{phase}_s"] = round(now - self._last, 3)
        self._last = now


def chunk_size(client: sync.SyncClient, draw: str) -> int:
    """Ids per stored ranking chunk (frozen when the run began)."""
    return int(client.hget(DrawKeys(draw).cfg, "ranking_chunk") or CHUNK)


def ranked_ids(
    client: sync.SyncClient, draw: str, start: int, count: int, size: int | None = None
) -> list[str]:
    """Ids at ranks [start, start + count) from the stored ranking (0-based); callers that
    read many slices pass the :func:`chunk_size` they read once."""
    k = DrawKeys(draw)
    if count <= 0:
        return []
    size = size or chunk_size(client, draw)
    first, last = start // size, (start + count - 1) // size
    blobs: list[Any] = client.hmget(k.ranking, [str(i) for i in range(first, last + 1)])
    ids: list[str] = []
    for blob in blobs:
        ids += ranking.split_lines(blob or b"")
    offset = start - first * size
    return ids[offset : offset + count]
