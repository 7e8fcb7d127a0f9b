"""Sale rehearsal: the whole sale on this machine, end to end, with one Redis crash.

    python -m loadtest.rehearsal --registrations 100000 --shoppers 1500

1. A private Valkey (AOF on) and ``guichet serve`` on it; the demo catalogue's 542 Olympic
   sessions (seats scaled by ``--seats-scale`` so that it sells out) in sale ``rehearsal``.
2. Registration behind a waiting room: ``--registrations`` people join the room, wait until
   called, are admitted, register for the draw (201), leave (asyncio clients).
3. The draw: close, commitment, run (two processes), verified from the auditors' data.
4. Two waves of purchase windows open now (``--winners`` people in all).
5. The shop: ``--shoppers`` winners (Locust, the window-rush scenario) come through the
   sale's waiting room, browse, hold packs, confirm or abandon, until sold out or
   ``--shop-time``; halfway, Valkey is killed with SIGKILL and restarted from its AOF.
6. Checks: available + held + sold = loaded for every item (no oversell), no account above
   30 tickets or 10 packs, every purchase confirmed before or after the crash still there,
   no account with two windows; a report (``report.json``, ``report.txt``) and exit 1 on any
   breach.

Bounded: every phase has a time limit; all processes started here are stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import uvloop

from guichet import auth
from guichet.app import SCRIPTS
from guichet.config import Settings
from guichet.draw import audit, seal, waves
from guichet.draw.run import ranked_ids, read_bucket, run
from guichet.draw.service import Draws
from guichet.embedded import EmbeddedValkey
from guichet.room.guard import ADMISSION_HEADER
from guichet.shop import demo
from guichet.shop.service import Shop
from guichet.shop.service import audit as audit_levels
from guichet.signing import Keyring
from guichet.store import sync
from guichet.store.client import connect
from guichet.store.keys import ENTRY_BUCKETS, SaleKeys
from guichet.units import US_PER_S
from loadtest.harness import (
    GENEROUS_JOIN_LIMITS,
    ROOT,
    GuichetServer,
    admin_put,
    put_draw,
    put_room,
    stop_process,
)
from loadtest.report import format_summary, read_locust

SALE = "rehearsal"
DRAW = "rehearsal-packs"
REG_ROOM = "registration"
SHOP_ROOM = "rehearsal"
CONSENT = {"accept_rules": True, "accept_data_processing": True}
JSON_BODY = {"Content-Type": "application/json"}
CONSENT_JSON = msgspec.json.encode(CONSENT)  # encoded once for every registration


def _peak_kib(pid: int) -> int:
    """The kernel's peak resident set (VmHWM) of ``pid`` in KiB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) ``pid`` has used so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


class PeakMemory:
    """Peak RSS of every process of the run, sampled each second from /proc (VmHWM is the
    kernel's own high-water mark, so a sample only has to come before the process ends):
    named roots and their children (the service's workers, Locust's)."""

    def __init__(self) -> None:
        self.roots: dict[str, int] = {}
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, name: str, pid: int | None) -> None:
        if pid is not None:
            self.roots[name] = pid

    def sample(self) -> None:
        for name, pid in list(self.roots.items()):
            self._keep(name, pid)
            for i, child in enumerate(_children(pid)):
                self._keep(f"{name} child {i + 1}", child)
        rusage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peaks["rehearsal (this process, its asyncio clients)"] = rusage

    def _keep(self, name: str, pid: int) -> None:
        self.peaks[name] = max(self.peaks.get(name, 0), _peak_kib(pid))

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by every watched process (and its children), and by this
        one: per phase, the differences say what each registration costs on a shared machine
        where wall time depends on the neighbours."""
        used: dict[str, float] = {}
        for name, pid in list(self.roots.items()):
            used[name] = _cpu_s(pid) + sum(_cpu_s(c) for c in _children(pid))
        own = resource.getrusage(resource.RUSAGE_SELF)
        used["rehearsal (this process, its asyncio clients)"] = own.ru_utime + own.ru_stime
        return used

    def mib(self) -> dict[str, float]:
        return {name: round(kib / 1024, 1) for name, kib in sorted(self.peaks.items()) if kib}


class Report:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.phases: dict[str, float] = {}
        self.facts: dict[str, Any] = {}
        self.breaches: list[str] = []
        self._last = self.started

    def phase(self, name: str) -> None:
        now = time.monotonic()
        self.phases[name] = round(now - self._last, 1)
        self._last = now
        print(f"[{now - self.started:6.1f} s] {name} done ({self.phases[name]} s)", flush=True)


def _scaled_catalogue(scale: float) -> dict[str, Any]:
    cat = msgspec.to_builtins(demo.shipped("olympic"))  # the sale's games (default olympic)
    for s in cat["sessions"]:
        for c in s["categories"]:
            c["seats"] = max(1, int(c["seats"] * scale))
    return cat  # type: ignore[no-any-return]


def _room(
    opens: datetime, rate: float, max_active: int, sale: str | None, draw: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "opens_at": (opens - timedelta(minutes=1)).isoformat(),
        "closes_at": (opens + timedelta(days=1)).isoformat(),
        "rate_per_s": rate, "max_active": max_active, "audience": "rehearsal",
        "target_url": "https://shop.example/", "idle_timeout_s": 60,
    }  # fmt: skip
    if sale:
        body["sale"] = sale
    if draw:  # the room guards the draw's entries (room/guard.py)
        body["draw"] = draw
    return body


# --- registration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class People:
    """A range of people to register (``fan-<first>`` … ``fan-<first + count - 1>``), their
    tokens minted as they come (3 M tokens held at once would be a gigabyte of strings):
    EdDSA with the development issuer's key (``key_file``), or HS256 with the secret shared
    with the service (``hs256_secret_file``, when set)."""

    url: str
    key_file: str
    issuer: str
    audience: str
    first: int
    count: int
    concurrency: int
    hs256_secret_file: str | None = None


def hs256_minter(secret: bytes, issuer: str, audience: str, ttl_s: int) -> Callable[[str], str]:
    """A function minting the HS256 account token of a subject, as a front-end sharing the
    secret with the service would (:func:`auth.mint_hs256`: PyJWT, never a JWT of ours)."""

    def mint(subject: str) -> str:
        return auth.mint_hs256(
            secret, issuer=issuer, audience=audience, subject=subject, ttl_s=ttl_s
        )

    return mint


def register_people(people: People) -> dict[str, float]:
    """One client process' share, on uvloop (a process of its own when there are several);
    the counts, and this process' CPU time (``cpu_s``) and peak RSS (``peak_kib``)."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    secret = None
    if people.hs256_secret_file is not None:
        secret = Path(people.hs256_secret_file).read_bytes()
    counts: dict[str, float] = dict(uvloop.run(_register_all(people, secret)))
    after = resource.getrusage(resource.RUSAGE_SELF)
    counts["cpu_s"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    counts["peak_kib"] = after.ru_maxrss
    return counts


async def _register_all(people: People, secret: bytes | None) -> dict[str, int]:
    """Each person: join the room, poll until ready, admit, register, leave."""
    url, concurrency = people.url, people.concurrency
    counts: dict[str, int] = {}
    numbers = iter(range(people.first, people.first + people.count))
    if secret is not None:
        mint_hs256 = hs256_minter(secret, people.issuer, people.audience, 3 * 3600)

        def token(i: int) -> str:
            return mint_hs256(f"fan-{i:07d}")
    else:
        key = auth.load_or_create_dev_key(people.key_file)

        def token(i: int) -> str:
            return auth.mint(key, issuer=people.issuer, audience=people.audience,
                             subject=f"fan-{i:07d}", ttl_s=3 * 3600)  # fmt: skip

    def count(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    decode = msgspec.json.decode  # the answers' JSON (aiohttp's json() is the stdlib's)

    async def person(http: aiohttp.ClientSession, token: str) -> None:
        bearer = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{url}/v1/rooms/{REG_ROOM}/join", headers=bearer) as r:
            if r.status not in (200, 201):
                count(f"join {r.status}")
                return
            status = decode(await r.read())
        ticket = status["ticket"]
        while status["state"] != "ready":
            if status["state"] not in ("waiting", "prequeue"):
                count(f"room {status['state']}")
                return
            # as the room says: ≥ 1 s (a cap of 0.2 s made ~2.8 polls a person, ~40 % of
            # the requests); the concurrency, not the polling, keeps the room busy
            await asyncio.sleep(status["poll_after_ms"] / 1000)
            count("polls")
            async with http.get(f"{url}/v1/rooms/{REG_ROOM}/status",
                                headers={"X-Queue-Ticket": ticket}) as r:  # fmt: skip
                status = decode(await r.read())
        with_ticket = {**bearer, "X-Queue-Ticket": ticket}
        async with http.post(f"{url}/v1/rooms/{REG_ROOM}/admit", headers=with_ticket) as r:
            if r.status != 200:
                count(f"admit {r.status}")
                return
            admitted = decode(await r.read())
        admission = admitted["ticket"]
        guarded = {**bearer, ADMISSION_HEADER: admitted["token"], **JSON_BODY}
        async with http.post(f"{url}/v1/draws/{DRAW}/entries", data=CONSENT_JSON,
                             headers=guarded) as r:  # fmt: skip
            count("registered" if r.status == 201 else f"register {r.status}")
        async with http.post(f"{url}/v1/rooms/{REG_ROOM}/leave",
                             headers={**bearer, "X-Queue-Ticket": admission}) as r:  # fmt: skip
            count("left" if r.status == 200 else f"leave {r.status}")

    async def worker(http: aiohttp.ClientSession) -> None:
        for i in numbers:
            try:
                await person(http, token(i))
            except (aiohttp.ClientError, TimeoutError, KeyError) as exc:
                count(f"error {type(exc).__name__}")

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return counts


def _new_secret(file: Path) -> Path:
    """A new shared HS256 secret (32 random bytes, base64url: printable, no newline to strip)
    in ``file``, readable by this user only."""
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"="))
    return file


def _register(
    server: GuichetServer, args: argparse.Namespace, memory: PeakMemory, clients_cpu_s: list[float]
) -> dict[str, int]:
    """``--registrations`` people over ``--client-processes`` processes (tokens minted in
    each as people come); the counts added up."""
    sec = server.settings().security
    n = max(1, args.client_processes)
    shares = [args.registrations // n + (1 if k < args.registrations % n else 0) for k in range(n)]
    starts = [sum(shares[:k]) for k in range(n)]
    parts = [People(server.url, sec.dev_issuer_key_file, sec.issuer, sec.audience, start, share,
                    max(1, args.concurrency // n), sec.account_hs256_secret_file)
             for start, share in zip(starts, shares, strict=True)]  # fmt: skip
    if n == 1:
        results = [register_people(parts[0])]
    else:
        with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(register_people, parts))
    total: dict[str, int] = {}
    for k, result in enumerate(results):
        if n > 1:  # a process of its own: its peak and its CPU time
            memory.peaks[f"registration client process {k + 1}"] = int(result["peak_kib"])
        clients_cpu_s[0] += result.pop("cpu_s")
        result.pop("peak_kib")
        for key, value in result.items():
            total[key] = total.get(key, 0) + int(value)
    return total


# --- the draw ------------------------------------------------------------------------------------


def _draw(server: GuichetServer, settings: Settings, report: Report) -> None:
    """Close registration in 3 s, commit before that, run, verify from the exported data."""
    now = datetime.now(UTC)
    closes = now + timedelta(seconds=3)
    put_draw(server.url, server.issuer(), DRAW, {
        "registration_opens_at": (now - timedelta(hours=1)).isoformat(),
        "registration_closes_at": closes.isoformat(), "strata": ["club", "general"],
        "sale": SALE, "phase": "packs"})  # fmt: skip
    key = seal.seal_key(settings.draws)

    async def commit() -> str:
        store = connect(settings.redis, scripts=SCRIPTS)
        try:
            c = await Draws(store).commit(DRAW, key)
            return c.code
        finally:
            await store.close()

    code = asyncio.run(commit())
    if code != "ok":
        raise RuntimeError(f"commit: {code}")
    time.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()) + 0.2)
    transcript, _ = run(settings.redis, sync.target(settings.redis), DRAW, beacon=b"rehearsal",
                        seal_key=key, signer=Keyring(settings.draws.signing_key_dir))  # fmt: skip
    report.facts["draw_entries"] = transcript.entries
    report.phase("draw run")
    client = sync.connect(settings.redis, sync.target(settings.redis))
    ids: list[bytes] = []
    places = []
    strata = tuple(transcript.strata)
    for bucket in range(ENTRY_BUCKETS):
        bucket_ids, positions = read_bucket(client, DRAW, strata, bucket, 5000)
        ids += bucket_ids
        places += positions.tolist()
    entries = [(strata[p], i.decode()) for p, i in zip(places, ids, strict=True)]
    ranked = ranked_ids(client, DRAW, 0, transcript.entries)
    jwks = {"keys": Keyring(settings.draws.signing_key_dir).published()}
    problems = audit.verify_pairs(transcript, entries, jwks=jwks, ranked_ids=ranked)
    report.facts["draw_verified"] = not problems
    report.breaches += [f"draw verify: {p}" for p in problems]
    report.phase("draw verified")


# --- the shop ------------------------------------------------------------------------------------


def _locust(server: GuichetServer, out: Path, winners_file: Path, shoppers: int,
            run_time_s: int) -> subprocess.Popen[bytes]:  # fmt: skip
    settings = server.settings()
    issuer = server.issuer()
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest/scenarios/window_rush.py"),
        "--headless", "--only-summary", "--host", server.url, "--users", str(shoppers),
        "--spawn-rate", str(max(1, shoppers // 10)), "--run-time", f"{run_time_s}s",
        "--stop-timeout", "5", "--csv", str(out / "locust"), "--html", str(out / "report.html"),
        "--room", SHOP_ROOM, "--sale", SALE, "--accounts-file", str(winners_file),
        "--packs", "10", "--attempts", "3", "--confirm-share", "0.8", "--poll-scale", "0.2",
        "--think-time", "0.1", "--surge-report", str(out / "people.json"),
        "--final-csv", str(out / "final"), "--dev-key-file",
        settings.security.dev_issuer_key_file, "--token-issuer", issuer.issuer,
        "--token-audience", issuer.audience,
    ]  # fmt: skip
    log = (out / "locust.log").open("wb")
    return subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip


def _crash(valkey: EmbeddedValkey, settings: Settings, after_s: float, done: threading.Event,
           report: Report, release: threading.Event, memory: PeakMemory) -> None:  # fmt: skip
    """SIGKILL Valkey once a third of the seats are sold (or after ``after_s``), restart it.

    The restarted server dies with the thread that started it (Linux's parent-death signal
    follows the thread), so this thread waits for ``release`` before it ends."""
    client = sync.connect(settings.redis, valkey.url)
    loaded = sum(int(v) for v in client.hvals(SaleKeys(SALE).loaded))
    deadline = time.monotonic() + after_s
    while not done.wait(0.25) and time.monotonic() < deadline:
        if sum(int(v) for v in client.hvals(SaleKeys(SALE).sold)) * 3 >= loaded:
            break
    if done.is_set():
        return
    report.facts["seats_sold_at_crash"] = sum(int(v) for v in client.hvals(SaleKeys(SALE).sold))
    client.close()
    assert valkey.process is not None
    os.kill(valkey.process.pid, signal.SIGKILL)
    valkey.process.wait()
    killed = time.monotonic()
    memory.sample()  # the killed server's last peak is kept under "valkey"
    valkey.start()
    memory.watch("valkey (restarted from its AOF)", valkey.process.pid if valkey.process else None)
    report.facts["redis_killed_at_s"] = round(killed - report.started, 1)
    report.facts["redis_down_s"] = round(time.monotonic() - killed, 2)
    print(f"Valkey killed (SIGKILL) and restarted in {report.facts['redis_down_s']} s",
          flush=True)  # fmt: skip
    release.wait()


def _check(settings: Settings, report: Report, out: Path, windows: int) -> None:
    people = json.loads((out / "people.json").read_text()) if (out / "people.json").exists() else {}
    confirmed = people.get("confirmed", [])

    async def check() -> None:
        store = connect(settings.redis, scripts=SCRIPTS)
        try:
            shop = Shop(store)
            levels = await shop.levels(SALE)
            report.breaches += [f"stock: {p}" for p in audit_levels(levels)]
            report.facts["seats_loaded"] = sum(levels.loaded.values())
            report.facts["seats_sold"] = sum(levels.sold.values())
            report.facts["seats_held"] = sum(levels.held.values())
            report.facts["seats_left"] = sum(levels.stock.values())
            k = SaleKeys(SALE)
            usage: dict[bytes, bytes] = await store.client.hgetall(k.usage)  # type: ignore[assignment]
            for field, value in usage.items():
                name = field.decode()
                if name.endswith(":t") and int(value) > 30:
                    report.breaches.append(f"quota: account {name[:-2]} has {int(value)} tickets")
                if name.endswith(":p") and int(value) > 10:
                    report.breaches.append(f"quota: account {name[:-2]} has {int(value)} packs")
            missing = 0
            for first in range(0, len(confirmed), 500):
                batch = confirmed[first : first + 500]
                raw = await store.client.hmget(k.holds, [h for _, h in batch])
                for (account, _hold_id), record in zip(batch, raw, strict=True):
                    r = msgspec.json.decode(record) if record else None
                    if r is None or r["state"] != "confirmed" or r["account"] != account:
                        missing += 1
            if missing:
                report.breaches.append(f"{missing} confirmed purchases missing or changed")
            report.facts["purchases_confirmed_and_present"] = len(confirmed) - missing
            given = await store.client.hlen(k.windows("packs"))
            if given != windows:
                report.breaches.append(f"{given} windows stored, {windows} assigned by waves")
        finally:
            await store.close()

    asyncio.run(check())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--registrations", type=int, default=100_000)
    p.add_argument(
        "--concurrency",
        type=int,
        default=2048,
        help="registering clients at once (most wait in the room between polls, as told: "
        "≥ 1 s each, so 2,000 people/s needs ~2,000 in flight)",
    )
    p.add_argument(
        "--client-processes",
        type=int,
        default=2,
        help="processes the registering clients are spread over (each mints its own tokens); "
        "2 measured best on 2 cores (3: the same within noise)",
    )
    p.add_argument(
        "--account-tokens",
        choices=("hs256", "eddsa"),
        default="hs256",
        help="how the registering people's account tokens are signed. hs256 (default): with a "
        "secret shared by the service and the clients (generated for the run, mode 600), as a "
        "front-end connector would: the rehearsal measures the sale, and this is the supported "
        "fast setup. eddsa: the development issuer's Ed25519 key, the identity-provider path "
        "(a signature check ~7x dearer at each first join)",
    )
    p.add_argument("--winners", type=int, default=6000, help="windows given (two waves)")
    p.add_argument("--shoppers", type=int, default=1500, help="Locust users in the shop")
    p.add_argument("--shop-time", type=int, default=150, help="seconds of shopping at most")
    p.add_argument(
        "--seats-scale", type=float, default=0.05, help="factor on the demo catalogue seats"
    )
    p.add_argument("--no-crash", action="store_true", help="do not kill Valkey")
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="the service's worker processes (2: 251 people/s against 182 with 1 at 10,000)",
    )
    p.add_argument(
        "--room-rate", type=float, default=5000, help="the registration room's admissions/s"
    )
    p.add_argument("--out", type=Path, help="report folder (default loadtest/reports/…)")
    args = p.parse_args(argv)
    out: Path = args.out or ROOT / "loadtest" / "reports" / time.strftime("rehearsal-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    report = Report()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="guichet-rehearsal-")))
        valkey = stack.enter_context(EmbeddedValkey(tmp / "valkey"))
        security: dict[str, Any] = {}
        if args.account_tokens == "hs256":  # the service and the clients share the secret
            security["account_hs256_secret_file"] = str(_new_secret(tmp / "account-hs256-secret"))
        server = GuichetServer(tmp / "guichet", redis_url=valkey.url, workers=args.workers,
                               rooms=dict(GENEROUS_JOIN_LIMITS), security=security)  # fmt: skip
        server.prepare()
        stack.enter_context(server)
        memory = stack.enter_context(PeakMemory())
        memory.watch("guichet serve", server.pid)
        memory.watch("valkey", valkey.process.pid if valkey.process else None)
        settings = server.settings()
        issuer = server.issuer()
        url = server.url
        now = datetime.now(UTC)
        admin_put(url, issuer, f"sales/{SALE}", {"phase": "packs", "hold_ttl_s": 120},
                  "sales:write")  # fmt: skip
        loaded = admin_put(url, issuer, f"sales/{SALE}/catalogue",
                           _scaled_catalogue(args.seats_scale), "sales:write")  # fmt: skip
        report.facts["catalogue"] = {"sessions": loaded["sessions"], "seats": loaded["seats"]}
        put_room(url, issuer, REG_ROOM, _room(now, args.room_rate, 1_000_000, None, DRAW))
        put_room(url, issuer, SHOP_ROOM, _room(now, 200, 5000, SALE))
        put_draw(url, issuer, DRAW, {
            "registration_opens_at": (now - timedelta(hours=1)).isoformat(),
            "registration_closes_at": (now + timedelta(hours=2)).isoformat(),
            "strata": ["club", "general"], "sale": SALE, "phase": "packs"})  # fmt: skip
        report.phase("setup")

        cpu_before, clients_cpu_s = memory.cpu(), [0.0]
        counts = _register(server, args, memory, clients_cpu_s)
        cpu_after = memory.cpu()
        report.facts["registration"] = counts
        report.facts["registration_cpu_s"] = {
            **{name: round(cpu_after[name] - cpu_before.get(name, 0.0), 1) for name in cpu_after},
            "registration clients (all processes)": round(clients_cpu_s[0], 1),
        }
        if counts.get("registered", 0) != args.registrations:
            report.breaches.append(f"registrations: {counts}")
        report.phase("registration through the waiting room")

        _draw(server, settings, report)
        client = sync.connect(settings.redis, sync.target(settings.redis))
        seconds, _ = client.time()
        now_us = int(seconds) * US_PER_S
        half = args.winners // 2
        first = waves.release(client, DRAW, count=half, starts_us=now_us, allow_short_notice=True)
        second = waves.release(
            client, DRAW, count=args.winners - half, starts_us=now_us, allow_short_notice=True
        )
        windows = first.assigned + second.assigned
        report.facts["windows"] = windows
        winners = ranked_ids(client, DRAW, 0, second.target)
        winners_file = tmp / "winners.txt"
        winners_file.write_text("\n".join(winners) + "\n")
        report.phase("two waves of windows")

        done, release = threading.Event(), threading.Event()
        stack.callback(release.set)  # at the end: the restarted Valkey stops with the thread
        locust = _locust(server, out, winners_file, min(args.shoppers, len(winners)),
                         args.shop_time)  # fmt: skip
        memory.watch("locust", locust.pid)
        crash = None
        if not args.no_crash:
            crash = threading.Thread(
                target=_crash,
                args=(valkey, settings, args.shop_time / 2, done, report, release, memory),
            )
            crash.start()
        try:
            locust.wait(args.shop_time + 60)
        except subprocess.TimeoutExpired:
            stop_process(locust)
        done.set()
        report.facts["locust_exit_code"] = locust.returncode
        report.phase("shopping (Locust window rush)")
        people_file = out / "people.json"
        people = json.loads(people_file.read_text()) if people_file.exists() else {}
        try:
            shop_summary = read_locust(out / "final", {k: v for k, v in people.items()
                                                       if k != "confirmed"})  # fmt: skip
            report.facts["shop_requests"] = format_summary(shop_summary).splitlines()
        except (OSError, ValueError) as exc:
            report.facts["shop_requests"] = [f"no Locust statistics: {exc}"]
        _check(settings, report, out, windows)
        report.phase("checks")
        memory.sample()
        code = server.stop()
        report.facts["server_exit_code"] = code
    report.facts["peak_rss_mib"] = memory.mib()

    total = round(time.monotonic() - report.started, 1)
    data = {"total_s": total, "phases_s": report.phases, **report.facts,
            "breaches": report.breaches}  # fmt: skip
    (out / "report.json").write_text(json.dumps(data, indent=1))
    text = json.dumps(data, indent=1)
    (out / "report.txt").write_text(text + "\n")
    print(text)
    print(f"{'NO BREACH' if not report.breaches else f'{len(report.breaches)} BREACHES'} "
          f"in {total} s; reports in {out}")  # fmt: skip
    return 1 if report.breaches else 0


if __name__ == "__main__":
    raise SystemExit(main())
