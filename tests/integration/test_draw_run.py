"""A draw end to end on a real Valkey: commit, close, run in worker processes (resumable),
verify from the export, release waves of windows, the window check, the outbox."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer
from loadtest.draw_bench import seed as seed_entries

from guichet import cli, opscli
from guichet.app import SCRIPTS, create_app
from guichet.audit import acts
from guichet.config import Settings
from guichet.draw import audit, model, outbox, seal, waves
from guichet.draw.run import RunError, ranked_ids, run
from guichet.draw.service import Commitment, Draws
from guichet.shop import model as shop_model
from guichet.shop.service import Shop
from guichet.signing import Keyring
from guichet.store import sync
from guichet.store.client import Store
from guichet.store.keys import ENTRY_BUCKETS, DrawKeys, SaleKeys, audit_chain
from tests.conftest import settings_file

T = TypeVar("T")
STRATA = ["club", "general"]
DAY_US = 86_400 * 1_000_000


def spec(**extra: Any) -> model.DrawSpec:
    now = datetime.now(UTC)
    fields = {
        "registration_opens_at": (now - timedelta(hours=1)).isoformat(),
        "registration_closes_at": (now + timedelta(hours=1)).isoformat(),
        "strata": STRATA,
        "sale": "s1",
        **extra,
    }
    return msgspec.convert(fields, model.DrawSpec, strict=False)


def with_draws(settings: Settings, work: Callable[[Draws], Awaitable[T]]) -> T:
    """Run ``work`` with the server's async service, from these (blocking) tests."""
    return opscli.with_store(settings, SCRIPTS, lambda store: work(Draws(store)))


def registered(settings: Settings, n: int, draw: str = "d1") -> list[tuple[str, str]]:
    entries = [("club" if i % 7 == 0 else "general", f"acct-{i:05d}-é") for i in range(n)]

    async def work(draws: Draws) -> None:
        await draws.put(draw, spec())
        club = frozenset({"club"})  # the token's groups claim: club is restricted
        codes = await asyncio.gather(*(draws.register(draw, a, s, club) for s, a in entries))
        assert {c[0] for c in codes} <= {"created"}

    with_draws(settings, work)
    return entries


def commit(settings: Settings) -> Commitment:
    key = seal.seal_key(settings.draws)
    return with_draws(settings, lambda d: d.commit("d1", key))


def close_now(client: sync.SyncClient, draw: str = "d1") -> None:
    """Fast-forward the close: registration ends now (the commitment was made before)."""
    seconds, micros = client.time()
    client.hset(DrawKeys(draw).cfg, "closes_us", int(seconds) * 1_000_000 + int(micros))


def do_run(settings: Settings, draw: str = "d1", **kwargs: Any) -> tuple[model.Transcript, bool]:
    options: dict[str, Any] = {
        "beacon": b"\x01\x02",
        "seal_key": seal.seal_key(settings.draws),
        "signer": Keyring(settings.draws.signing_key_dir),
        "processes": 2,
        "chunk": 100,
        **kwargs,
    }
    return run(settings.redis, sync.target(settings.redis), draw, **options)


def client_of(settings: Settings) -> sync.SyncClient:
    return sync.connect(settings.redis, sync.target(settings.redis))


def text(raw: object) -> str:
    """A reply of ``client_of``'s client as text (it does not decode replies)."""
    assert isinstance(raw, bytes), raw
    return raw.decode()


def committed_and_closed(settings: Settings, n: int) -> list[tuple[str, str]]:
    entries = registered(settings, n)
    assert commit(settings).code == "ok"
    close_now(client_of(settings))
    return entries


def test_run_ranks_every_entry_as_the_reference_and_verifies(
    settings: Settings, tmp_path: Path
) -> None:
    entries = committed_and_closed(settings, 3000)
    transcript, ran = do_run(settings)
    assert ran
    key = model.draw_key("d1", bytes.fromhex(transcript.seed), b"\x01\x02")
    expected = [e for _, e in model.rank(entries, STRATA, key)]
    client = client_of(settings)
    assert ranked_ids(client, "d1", 0, 3000) == expected
    assert ranked_ids(client, "d1", 150, 20) == expected[150:170]
    assert transcript.entries == 3000
    assert transcript.entries_by_stratum == {"club": 429, "general": 2571}
    state = with_draws(settings, lambda d: d.state("d1"))
    assert state is not None
    assert transcript.commitment == state.commitment
    # The CLI exports for auditors, and verify recomputes it all from the files.
    paths = {name: tmp_path / name for name in ("t.json", "e.tsv", "r.tsv", "jwks.json")}
    config = settings_file(settings, tmp_path / "ops.toml")
    assert _cli(config, "draw", "transcript", "d1", "--out", str(paths["t.json"])) == 0
    assert _cli(config, "draw", "export", "d1", "--entries", str(paths["e.tsv"]),
                "--ranking", str(paths["r.tsv"])) == 0  # fmt: skip
    keyring = Keyring(settings.draws.signing_key_dir)
    paths["jwks.json"].write_text(json.dumps({"keys": keyring.published()}))
    verify = ["draw", "verify", str(paths["t.json"]), str(paths["e.tsv"]),
              "--jwks", str(paths["jwks.json"]), "--ranking", str(paths["r.tsv"])]  # fmt: skip
    assert _cli(config, *verify) == 0
    lines = paths["e.tsv"].read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3000
    assert lines == sorted(lines, key=lambda x: x.split("\t")[1].encode())
    paths["e.tsv"].write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")  # one dropped
    assert _cli(config, *verify) == 1
    paths["e.tsv"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    altered = json.loads(paths["t.json"].read_text())
    altered["ran_at"] = "2030-01-01T00:00:00Z"
    paths["t.json"].write_text(json.dumps(altered))
    assert _cli(config, *verify) == 1  # the signature catches it
    # Running again changes nothing and answers the published transcript.
    again, ran_again = do_run(settings)
    assert not ran_again
    assert again == transcript


def _published_jwks(settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """(admission JWKS, draw JWKS) as a freshly started server publishes them over HTTP."""

    async def fetch() -> tuple[dict[str, Any], dict[str, Any]]:
        async with TestClient(TestServer(app, host="127.0.0.1")) as http:
            admission = await (await http.get("/.well-known/jwks.json")).json()
            resp = await http.get("/.well-known/draw-jwks.json")
            assert resp.status == 200, await resp.text()
            return admission, await resp.json()

    app = create_app(settings)  # outside the loop, as in production
    return asyncio.run(fetch())


def test_an_old_transcript_verifies_after_admission_key_rotation_and_a_reforged_one_fails(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The transcript is signed with a draw key published for good: rotating the admission
    key and passing its retirement changes nothing. A transcript re-made with a new seed, its
    own commitment and matching digests (signed by an insider) fails with --commitment."""
    entries = committed_and_closed(settings, 40)
    config = settings_file(settings, tmp_path / "ops.toml")
    paths = {name: tmp_path / name for name in ("t.json", "e.tsv", "jwks.json", "forged.json")}
    assert _cli(config, "draw", "run", "d1", "--quiet", "--out", str(paths["t.json"])) == 0
    assert _cli(config, "draw", "export", "d1", "--entries", str(paths["e.tsv"])) == 0
    published = audit.load_transcript(paths["t.json"]).commitment
    admission = Keyring(settings.rooms.signing_key_dir)
    old_kid = admission.active.kid
    admission.rotate(now=time.time() - 7200)  # its successor came 2 h ago: the old key retired
    admission_jwks, draw_jwks = _published_jwks(settings)
    assert old_kid not in {k["kid"] for k in admission_jwks["keys"]}
    assert not {k["kid"] for k in admission_jwks["keys"]} & {k["kid"] for k in draw_jwks["keys"]}
    paths["jwks.json"].write_text(json.dumps(draw_jwks))
    verify = ["draw", "verify", str(paths["t.json"]), str(paths["e.tsv"]),
              "--jwks", str(paths["jwks.json"])]  # fmt: skip
    capsys.readouterr()
    assert _cli(config, *verify, "--commitment", published.upper()) == 0
    assert "OK: draw d1 verifies" in capsys.readouterr().out
    # An insider re-makes the draw with a seed of their choosing and signs it.
    transcript = audit.load_transcript(paths["t.json"])
    seed = bytes(range(32))
    key = model.draw_key("d1", seed, bytes.fromhex(transcript.beacon))
    forged = msgspec.structs.replace(
        transcript,
        seed=seed.hex(),
        commitment=model.commitment(seed),
        ranking_digest=model.ranking_digest(e for _, e in model.rank(entries, STRATA, key)),
        signature="",
    )
    forged = audit.sign(forged, Keyring(settings.draws.signing_key_dir))
    paths["forged.json"].write_bytes(msgspec.json.encode(forged))
    forged_verify = [verify[0], verify[1], str(paths["forged.json"]), *verify[3:]]
    assert _cli(config, *forged_verify) == 0  # every digest and the signature hold…
    assert "commitment not checked" in capsys.readouterr().err
    assert _cli(config, *forged_verify, "--commitment", published) == 1  # …not the commitment
    assert "commitment is not the one published" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:  # not a commitment: usage error, naming it
        _cli(config, *verify, "--commitment", "12ab")
    assert bad.value.code == 2
    assert "--commitment" in capsys.readouterr().err


def _cli(config: Path, *argv: str) -> int:
    """``guichet --config FILE …`` in-process."""
    return cli.main(["--config", str(config), *argv])


def test_a_draw_cannot_run_without_a_commitment_made_before_the_close(settings: Settings) -> None:
    registered(settings, 10)
    with pytest.raises(RunError, match="no commitment"):
        do_run(settings)
    client = client_of(settings)
    close_now(client)
    late = commit(settings)
    assert late.code == "closed"  # too late to commit
    client.hset(DrawKeys("d1").cfg, "closes_us", late.closes_us + 3_600_000_000)
    c = commit(settings)
    assert c.code == "ok"
    again = commit(settings)
    assert (again.code, again.commitment) == ("exists", c.commitment)  # never replaced
    with pytest.raises(RunError, match="registration is open until"):
        do_run(settings)
    client.hset(DrawKeys("d1").cfg, "closes_us", c.committed_us)  # commitment not before it
    with pytest.raises(RunError, match="after registration closed"):
        do_run(settings)
    close_now(client)
    with pytest.raises(seal.SealError):
        do_run(settings, seal_key=b"\x00" * 32)


class Killed(Exception):
    pass


def kill_after(phase: str, at: int) -> Callable[[str, int, int], None]:
    def progress(p: str, done: int, total: int) -> None:
        if p == phase and done >= at:
            raise Killed(f"{phase} {done}/{total}")

    return progress


def test_a_run_killed_midway_resumes_to_the_same_result(settings: Settings) -> None:
    entries = committed_and_closed(settings, 2000)
    client = client_of(settings)
    with pytest.raises(Killed):
        do_run(settings, progress=kill_after("store", 8))
    stored = client.hlen(DrawKeys("d1").ranking)
    assert 8 <= stored < 20
    assert client.hget(DrawKeys("d1").cfg, "transcript") is None  # nothing published
    with pytest.raises(RunError, match="same --beacon"):
        do_run(settings, beacon=b"another")
    transcript, ran = do_run(settings)
    assert ran
    ids = ranked_ids(client, "d1", 0, 2000)
    assert sorted(ids) == sorted(a for _, a in entries)  # none lost, none doubled
    key = model.draw_key("d1", bytes.fromhex(transcript.seed), b"\x01\x02")
    assert ids == [e for _, e in model.rank(entries, STRATA, key)]
    assert audit.verify_pairs(transcript, entries) == []


def release_all(settings: Settings, count: int, starts_us: int, **kwargs: Any) -> waves.Wave:
    return waves.release(client_of(settings), "d1", count=count, starts_us=starts_us, batch=64,
                         **kwargs)  # fmt: skip


def test_waves_give_each_ranked_entrant_one_fixed_window_in_rank_order(settings: Settings) -> None:
    committed_and_closed(settings, 1000)
    do_run(settings)
    client = client_of(settings)
    seconds, micros = client.time()
    now_us = int(seconds) * 1_000_000 + int(micros)
    with pytest.raises(RunError, match="announced"):
        release_all(settings, 10, now_us + DAY_US)  # notice is 2 days
    with pytest.raises(RunError, match="not in stratum 'general'"):
        release_all(settings, 300, now_us + 3 * DAY_US, stratum="general")  # club goes first
    club = release_all(settings, 300, now_us + 3 * DAY_US, stratum="club")
    assert (club.number, club.assigned, club.target) == (1, 143, 143)  # the club days end there
    club_ids = ranked_ids(client, "d1", 0, 143)
    entries = with_draws(settings, lambda d: asyncio.gather(*(d.entry("d1", a) for a in club_ids)))
    assert {e.stratum for e in entries if e is not None} == {"club"}
    first = release_all(settings, 157, now_us + 3 * DAY_US)
    assert (first.number, first.assigned, first.first_rank, first.target) == (2, 157, 143, 300)
    second = release_all(settings, 300, now_us + 5 * DAY_US)
    assert (second.number, second.first_rank, second.target) == (3, 300, 600)
    ranked = ranked_ids(client, "d1", 0, 1000)
    windows = {text(k): text(v) for k, v in client.hgetall(SaleKeys("s1").windows("packs")).items()}
    assert set(windows) == set(ranked[:600])  # exactly the first 600 ranks
    for rank, account in enumerate(ranked[:300]):
        starts, ends, draw, wave = windows[account].split(":")
        assert (int(starts), int(ends), draw, wave) == (
            now_us + 3 * DAY_US,
            now_us + 3 * DAY_US + 48 * 3600 * 1_000_000,
            "d1",
            "1" if rank < 143 else "2",  # the club's wave, then the first general one
        )
    assert client.xlen(SaleKeys("s1").outbox) == 600
    # The last wave stops at the end of the ranking; after it there is nobody left.
    last = release_all(settings, 10_000, now_us + 7 * DAY_US)
    assert (last.assigned, last.target) == (400, 1000)
    with pytest.raises(RunError, match="already has a window"):
        release_all(settings, 1, now_us + 9 * DAY_US)
    assert client.hlen(SaleKeys("s1").windows("packs")) == 1000
    # The entry's status follows.
    entry = with_draws(settings, lambda d: d.entry("d1", ranked[0]))
    assert entry is not None
    assert entry.status == "window_assigned"
    assert entry.window is not None
    assert entry.window.wave == 1


def wave_outcomes(client: sync.SyncClient) -> list[str]:
    """The outcomes of the sale's ``draw.wave`` records."""
    entries: Any = client.xrange(audit_chain("sale:s1"))
    return [text(f[b"outcome"]) for _, f in entries if f[b"action"] == b"draw.wave"]


def test_a_killed_wave_resumes_and_concurrent_releases_never_double(settings: Settings) -> None:
    committed_and_closed(settings, 1200)
    do_run(settings)
    client = client_of(settings)
    seconds, _ = client.time()
    starts = (int(seconds) + 3 * 86_400) * 1_000_000

    def killed(done: int, total: int) -> None:
        if done >= 128:
            raise Killed

    with pytest.raises(Killed):
        release_all(settings, 500, starts, progress=killed)
    # The killed release has its record (written by its first batch): no act without it.
    assert wave_outcomes(client) == ["started"]
    resumed = release_all(settings, 1, starts + DAY_US)  # other args: the pending wave wins
    assert resumed.resumed
    assert wave_outcomes(client) == ["started", "started"]  # the resumption: an act of its own
    assert (resumed.number, resumed.starts_us, resumed.target) == (
        1,
        starts,
        500,
    )
    # Four releases race for wave 2: each batch lands once, whoever sends it.
    errors: list[Exception] = []

    def race() -> None:
        try:
            waves.release(client_of(settings), "d1", count=700, starts_us=starts + 2 * DAY_US,
                          batch=32)  # fmt: skip
        except RunError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) < 4
    ranked = ranked_ids(client, "d1", 0, 1200)
    windows = client.hgetall(SaleKeys("s1").windows("packs"))
    assert {text(k) for k in windows} == set(ranked)  # 500 + 700, each once
    assert client.xlen(SaleKeys("s1").outbox) == 1200
    waves_of = [text(v).split(":")[3] for v in windows.values()]
    assert waves_of.count("1") == 500
    assert waves_of.count("2") == 700


def test_the_window_check_and_the_outbox(settings: Settings) -> None:
    committed_and_closed(settings, 50)
    do_run(settings)
    client = client_of(settings)
    seconds, _ = client.time()
    now = int(seconds) * 1_000_000
    release_all(settings, 10, now - 1_000_000, allow_short_notice=True)  # open now
    release_all(settings, 10, now + 3 * DAY_US)  # later
    ranked = ranked_ids(client, "d1", 0, 50)
    states = with_draws(settings, lambda d: asyncio.gather(
        *(d.window_state("s1", "packs", ranked[i]) for i in (0, 15, 30))))  # fmt: skip
    assert [x[0] for x in states] == ["open", "before", "none"]
    entry = with_draws(settings, lambda d: d.entry("d1", ranked[30]))
    assert entry is not None
    assert entry.status == "not_selected_yet"

    async def mailer(draws: Draws) -> None:
        c = draws.store.client
        backlog = await outbox.backlog(c, "s1")
        assert (backlog.length, backlog.undelivered, backlog.pending) == (20, 20, 0)
        assert backlog.oldest_due_us is not None
        assert backlog.oldest_due_us < now
        read = await outbox.read(draws.store, "s1", "mailer-1", 15, 600_000)
        assert [n.account for n in read] == ranked[:15]
        assert read[0].wave == 1
        assert read[-1].wave == 2
        assert await outbox.ack(draws.store, "s1", [n.id for n in read[:5]]) == 5
        backlog = await outbox.backlog(c, "s1")
        assert (backlog.undelivered, backlog.pending) == (5, 10)

    with_draws(settings, mailer)


def _spawn_run(
    settings: Settings, tmp_path: Path, *extra: str
) -> tuple[subprocess.Popen[bytes], Path, list[str]]:
    """`guichet draw run d1` as a real process; its stderr goes to the returned log file;
    the argv, to run it again."""
    config = settings_file(settings, tmp_path / "ops.toml")
    argv = ["-m", "guichet", "--config", str(config), "draw", "run", "d1", "--quiet", *extra]
    log = tmp_path / "run.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, *argv], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    return proc, log, argv


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _gone(pids: set[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{p}").exists() for p in pids):
            return True
        time.sleep(0.05)
    return False


def run_outcomes(client: sync.SyncClient) -> list[str]:
    """The outcomes of the draw's ``draw.run`` records."""
    entries: Any = client.xrange(audit_chain("draw:d1"))
    return [text(f[b"outcome"]) for _, f in entries if f[b"action"] == b"draw.run"]


def test_the_run_command_killed_with_sigkill_resumes_to_the_same_ranking(
    settings: Settings, tmp_path: Path
) -> None:
    """`guichet draw run` as a real process, SIGKILLed while it stores the ranking; its
    workers go with it, and the next run publishes every entry exactly once, in the order
    the formula gives."""
    registered(settings, 1)  # the draw exists; the rest is written straight in, as the bench
    client = client_of(settings)
    seed_entries(client, "d1", 30_000)  # type: ignore[arg-type]  # typed for redis.Redis only
    assert commit(settings).code == "ok"
    close_now(client)
    proc, log, argv = _spawn_run(settings, tmp_path, "--chunk", "1")
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while client.hlen(DrawKeys("d1").ranking) < 100:  # the store phase has begun
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the run never reached the store phase"
        workers |= _children(proc.pid)
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    stored = client.hlen(DrawKeys("d1").ranking)
    assert 100 <= stored < 30_001
    assert client.hget(DrawKeys("d1").cfg, "transcript") is None, "killed too late"
    # the killed run has its record (begin.lua, its first writing script): no act without it
    assert run_outcomes(client) == ["started"]
    assert workers
    assert _gone(workers, 20), "the run's worker processes outlived it"
    done = subprocess.run([sys.executable, *argv], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert run_outcomes(client) == ["started", "resumed"]  # the resumption: an act of its own
    transcript = msgspec.json.decode(done.stdout, type=model.Transcript)
    assert transcript.entries == 30_001
    ids = ranked_ids(client, "d1", 0, 30_001)
    assert len(ids) == len(set(ids)) == 30_001
    entries = [(text(v).split(":")[0], text(k)) for b in range(ENTRY_BUCKETS)
               for k, v in client.hgetall(DrawKeys("d1").entries(b)).items()]  # fmt: skip
    key = model.draw_key("d1", bytes.fromhex(transcript.seed), b"")
    assert ids == [e for _, e in model.rank(entries, STRATA, key)]
    assert audit.verify_pairs(transcript, entries) == []


def test_the_run_command_killed_with_sigkill_mid_scan_takes_its_workers_along(
    settings: Settings, tmp_path: Path
) -> None:
    """`guichet draw run` SIGKILLed while its workers scan: the workers (and the
    multiprocessing resource tracker) are gone within seconds, not minutes."""
    registered(settings, 1)
    client = client_of(settings)
    seed_entries(client, "d1", 100_000)  # type: ignore[arg-type]  # typed for redis.Redis only
    assert commit(settings).code == "ok"
    close_now(client)
    slow = msgspec.structs.replace(
        settings, draws=msgspec.structs.replace(settings.draws, scan_batch=100)
    )
    proc, log, _ = _spawn_run(slow, tmp_path)
    children: set[int] = set()
    deadline = time.monotonic() + 60
    cfg = DrawKeys("d1").cfg
    while True:  # kill once a bucket is back and others are still being scanned
        children |= _children(proc.pid)
        progress = client.hget(cfg, "run_progress")
        if isinstance(progress, bytes) and progress.startswith(b"scan:") and len(children) >= 3:
            break
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the run never reached the scan"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    progress = client.hget(cfg, "run_progress")
    assert progress is not None
    assert progress != b"scan:64:64"
    assert client.hget(cfg, "run_started_us") is None, "killed after the scan"
    assert len(children) >= 3  # two workers and the resource tracker
    assert _gone(children, 10), "the run's worker processes outlived it"


def test_wave_from_stock_and_the_outbox_commands(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    committed_and_closed(settings, 100)
    do_run(settings)
    config = settings_file(settings, tmp_path / "ops.toml")
    start = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    capsys.readouterr()
    # No buyers seen yet: the priors (half convert, 6 tickets each) and a 10 % margin.
    assert _cli(config, "draw", "release-wave", "d1", "--from-stock", "30", "--start", start,
                "--quiet") == 0  # fmt: skip
    released = json.loads(capsys.readouterr().out)
    assert (released["wave"], released["assigned"]) == (1, 11)  # ceil(30 / 3 * 1.1)
    assert _cli(config, "outbox", "show", "s1") == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["length"], shown["undelivered"], shown["pending"]) == (11, 11, 0)
    assert _cli(config, "outbox", "read", "s1", "--consumer", "m1", "--count", "4") == 0
    notices = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(notices) == 4
    assert notices[0]["account"] == ranked_ids(client_of(settings), "d1", 0, 1)[0]
    assert _cli(config, "outbox", "ack", "s1", notices[0]["id"], notices[1]["id"]) == 0
    assert "2 acknowledged" in capsys.readouterr().out
    assert _cli(config, "outbox", "show", "s1") == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["undelivered"], shown["pending"]) == (7, 2)
    assert _cli(config, "outbox", "trim", "s1") == 0  # the 2 acknowledged ones, nothing else
    assert "2 acknowledged notices deleted" in capsys.readouterr().out
    assert _cli(config, "outbox", "show", "s1") == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["length"], shown["undelivered"], shown["pending"]) == (9, 7, 2)
    assert _cli(config, "outbox", "read", "s1", "--consumer", "m1", "--count", "20") == 0
    rest = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rest) == 7
    assert _cli(config, "outbox", "ack", "s1", *(n["id"] for n in notices[2:] + rest)) == 0
    assert _cli(config, "outbox", "trim", "s1") == 0
    assert "9 acknowledged notices deleted" in capsys.readouterr().out
    assert _cli(config, "draw", "show", "d1") == 0
    assert json.loads(capsys.readouterr().out)["waves"]["assigned"] == 11


def _show(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, int, int]:
    assert _cli(config, "outbox", "show", "s1") == 0
    shown = json.loads(capsys.readouterr().out)
    return shown["length"], shown["undelivered"], shown["pending"]


def test_notices_of_a_reader_that_never_acked_go_to_the_next_reader(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real `guichet outbox read` process reads 5 notices and exits without acking (the
    mail sender died): once they have been idle for the claim bound, the next reader gets
    them; before that, it gets only new ones."""
    committed_and_closed(settings, 20)
    do_run(settings)
    client = client_of(settings)
    seconds, _ = client.time()
    release_all(settings, 8, (int(seconds) + 3 * 86_400) * 1_000_000)
    config = settings_file(settings, tmp_path / "ops.toml")
    argv = ["-m", "guichet", "--config", str(config), "outbox", "read", "s1",
            "--consumer", "died", "--count", "5"]  # fmt: skip
    dead = subprocess.run([sys.executable, *argv], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=120, text=True)  # fmt: skip
    assert dead.returncode == 0, dead.stderr
    lost = {json.loads(line)["id"] for line in dead.stdout.splitlines()}
    assert len(lost) == 5
    capsys.readouterr()
    assert _show(config, capsys) == (8, 3, 5)
    # Within the bound the dead reader's notices are left alone: only the 3 new ones.
    read = ["outbox", "read", "s1", "--count", "10"]
    assert _cli(config, *read, "--consumer", "m2", "--claim-idle-s", "3600") == 0
    fresh = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(fresh) == 3
    assert not lost & {n["id"] for n in fresh}
    # Past the bound (1 s here) the next reader takes them over.
    deadline = time.monotonic() + 60
    taken: list[dict[str, Any]] = []
    while {n["id"] for n in taken} < lost:
        assert time.monotonic() < deadline, "the unacknowledged notices never came back"
        time.sleep(0.1)  # idle time has to pass: poll it
        assert _cli(config, *read, "--consumer", "m3", "--claim-idle-s", "1") == 0
        taken += [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert _cli(config, "outbox", "ack", "s1", *lost) == 0
    assert "5 acknowledged" in capsys.readouterr().out
    assert _show(config, capsys)[1:] == (0, 3)  # m2's 3 (or m3's, if claimed) stay pending
    for flag, value in (("--count", "0"), ("--claim-idle-s", "0"), ("--claim-idle-s", "x")):
        with pytest.raises(SystemExit) as bad:  # a usage error naming the flag; nothing read
            _cli(config, "outbox", "read", "s1", flag, value)
        assert bad.value.code == 2
        assert flag in capsys.readouterr().err
    assert _show(config, capsys)[1:] == (0, 3)


def test_trim_deletes_every_acknowledged_notice_among_pending_ones(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    committed_and_closed(settings, 20)
    do_run(settings)
    client = client_of(settings)
    seconds, _ = client.time()
    release_all(settings, 12, (int(seconds) + 3 * 86_400) * 1_000_000)
    config = settings_file(settings, tmp_path / "ops.toml")
    capsys.readouterr()
    assert _cli(config, "outbox", "read", "s1", "--consumer", "m1", "--count", "8") == 0
    ids = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert len(ids) == 8
    acked, pending = ids[1::2], ids[0::2]  # interleaved; the first and the last delivered
    assert _cli(config, "outbox", "ack", "s1", *acked) == 0  # ids[7]: the last delivered
    capsys.readouterr()
    assert _cli(config, "outbox", "trim", "s1") == 0
    assert "4 acknowledged notices deleted" in capsys.readouterr().out
    stream = client.xrange(SaleKeys("s1").outbox)
    assert stream is not None
    left = [text(i) for i, _ in stream]
    assert left[:4] == pending  # the pending ones stay, and the 4 never delivered
    assert len(left) == 8
    assert _show(config, capsys) == (8, 4, 4)
    assert _cli(config, "outbox", "trim", "s1") == 0
    assert "0 acknowledged notices deleted" in capsys.readouterr().out
    assert _cli(config, "outbox", "read", "s1", "--consumer", "m1", "--count", "8") == 0
    rest = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert rest == left[4:]  # the undelivered ones still arrive, in order


def test_a_trim_in_several_calls_is_recorded_by_its_first(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first call of a trim alone (its caller then gone) has written the act's record;
    the later calls of the same trim write none."""
    committed_and_closed(settings, 20)
    do_run(settings)
    client = client_of(settings)
    seconds, _ = client.time()
    release_all(settings, 12, (int(seconds) + 3 * 86_400) * 1_000_000)
    key = SaleKeys("s1").outbox

    async def deliver_and_ack(store: Store) -> None:
        got = await outbox.read(store, "s1", "m1", 10, 60_000)
        await outbox.ack(store, "s1", [n.id for n in got])

    opscli.with_store(settings, SCRIPTS, deliver_and_ack)

    def trims() -> list[str]:
        entries: Any = client.xrange(audit_chain("sale:s1"))
        return [text(f[b"outcome"]) for _, f in entries if f[b"action"] == b"outbox.trim"]

    act = acts.internal("outbox.trim", "sale:s1")
    ks, args = acts.keys_args(act, [key], [outbox.GROUP, "", 3])
    deleted, after = sync.call(client, outbox.TRIM, ks, args)
    assert (int(deleted), text(after) != "") == (3, True)  # 3 of the 10 acked: more to come
    assert trims() == ["started"]

    async def trim_rest(store: Store) -> int:
        return await outbox.trim(store, "s1")

    monkeypatch.setattr(outbox, "TRIM_BATCH", 2)
    assert opscli.with_store(settings, SCRIPTS, trim_rest) == 7
    assert trims() == ["started", "started"]  # a second trim: its first call, nothing after
    assert client.xlen(key) == 2  # the 2 never delivered


@pytest.mark.parametrize("n", [0, 1])
def test_a_draw_with_no_entry_or_one_runs(settings: Settings, n: int) -> None:
    entries = committed_and_closed(settings, n)
    transcript, ran = do_run(settings)
    assert ran
    assert (transcript.entries, ranked_ids(client_of(settings), "d1", 0, 5)) == (
        n,
        [a for _, a in entries],
    )
    assert audit.verify_pairs(transcript, entries) == []


def test_draw_commands_refuse_bad_input_and_change_nothing(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = settings_file(settings, tmp_path / "ops.toml")
    assert _cli(config, "draw", "put", "d9", "--opens", "2026-01-01T00:00:00Z",
                "--closes", "2025-01-01T00:00:00Z") == 1  # fmt: skip
    assert "registration_closes_at" in capsys.readouterr().err
    assert _cli(config, "draw", "show", "d9") == 1
    assert _cli(config, "draw", "commit", "d9") == 1
    assert "no draw" in capsys.readouterr().err
    registered(settings, 3)
    assert _cli(config, "draw", "run", "d1", "--beacon", "not-hex", "--quiet") == 2
    assert "--beacon must be hex" in capsys.readouterr().err
    assert _cli(config, "draw", "run", "d1", "--quiet") == 1
    assert "no commitment" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # not a time: argparse's usage error, naming it
        _cli(config, "draw", "release-wave", "d1", "--count", "5", "--start", "soon")
    assert usage.value.code == 2
    assert "--start" in capsys.readouterr().err
    assert _cli(config, "draw", "release-wave", "d1", "--count", "5", "--start",
                "2030-01-01T00:00:00Z", "--quiet") == 1  # fmt: skip
    assert "has not run yet" in capsys.readouterr().err
    assert client_of(settings).hget(DrawKeys("d1").cfg, "commitment") is None
    assert not client_of(settings).exists(DrawKeys("d9").cfg)


SESSIONS = ("S1", "S2", "S3")
CATALOGUE = msgspec.convert({"sessions": [
    {"id": sid, "sport": "Judo", "venue": "Champ-de-Mars Arena",
     "starts_at": "2024-07-28T10:00:00Z",
     "categories": [{"id": "A", "price_eur": 50, "seats": 2000}]}
    for sid in SESSIONS
]}, shop_model.Catalogue)  # fmt: skip
PACK = shop_model.Pack(items=[shop_model.Item(session=s, category="A", quantity=1)
                              for s in SESSIONS])  # fmt: skip


def test_confirms_record_each_wave_and_sizing_learns_from_them(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 13, item 6: a confirm records its buyer (once per phase) and tickets against the
    wave of the buyer's window; ``--from-stock`` sizing uses tickets per window of the waves
    that have ended (priors before); ``guichet draw waves`` shows it per wave."""
    committed_and_closed(settings, 400)
    do_run(settings)
    client = client_of(settings)
    seconds, micros = client.time()
    now_us = int(seconds) * 1_000_000 + int(micros)
    first = release_all(settings, 200, now_us - 60_000_000, allow_short_notice=True)  # open now
    ranked = ranked_ids(client, "d1", 0, 400)

    async def buy(shop: Shop) -> list[str]:
        await shop.put("s1", shop_model.SaleSpec())
        assert (await shop.load("s1", CATALOGUE)).code == "ok"
        codes: list[str] = []

        async def hold_and_confirm(account: str, packs: int, key: str, confirm: bool) -> None:
            request = shop_model.HoldRequest(packs=[PACK] * packs)
            held = await shop.hold("s1", "packs", account, key, request)
            codes.append(held.code)
            if held.code == "ok" and confirm:
                confirmed = await shop.confirm("s1", account, held.hold, "pay-" + key, 2000)
                codes.append(confirmed.code)

        for i, account in enumerate(ranked[:150]):  # 150 of the 200 windows buy
            await hold_and_confirm(account, 3 if i % 2 == 0 else 1, f"k{i}", True)
        await hold_and_confirm(ranked[1], 1, "again", True)  # a second purchase: same buyer
        await hold_and_confirm(ranked[150], 1, "held", False)  # held, never confirmed
        await hold_and_confirm(ranked[300], 1, "late", True)  # no window yet: refused
        return codes

    codes = opscli.with_store(settings, SCRIPTS, lambda store: buy(Shop(store)))
    assert codes.count("ok") == 2 * 151 + 1
    assert codes[-1] == "window"
    tickets = 75 * 9 + 75 * 3 + 3
    _, now = waves.state(client, "d1")
    (record,) = now.records
    assert (record.number, record.windows, record.buyers, record.tickets) == (1, 200, 150, tickets)
    assert now.observed == (0, 0, 0)  # the windows are still open: nothing to learn from yet
    assert waves.size_from_stock(now, 3000) == model.wave_size(3000, 0, 0, 0) == 1100  # priors
    _, later = waves.state(client, "d1", now_us=first.ends_us)
    assert later.observed == (200, 150, tickets)
    learned = waves.size_from_stock(later, 3000)
    assert learned == math.ceil(3000 / (tickets / 200) * 1.1) == 731
    # the CLI: a second wave sized from the sale's stock, then the table per wave
    config = str(settings_file(settings, tmp_path / "ops.toml"))
    start = datetime.fromtimestamp(now_us / 1e6 + 3 * 86_400, UTC).isoformat()
    assert cli.main(["--config", config, "draw", "release-wave", "d1", "--from-stock",
                     "--start", start, "--quiet"]) == 0  # fmt: skip
    stock = waves.stock_left(client, "s1")
    assert stock == 3 * 2000 - tickets - 3  # the held pack is not in stock either
    capsys.readouterr()
    assert cli.main(["--config", config, "draw", "waves", "d1"]) == 0
    shown = json.loads(capsys.readouterr().out)
    one, two = shown["waves"]
    assert (one["windows"], one["buyers"], one["tickets"]) == (200, 150, tickets)
    assert (one["conversion"], one["state"]) == (0.75, "open")
    assert two["windows"] == min(200, model.wave_size(stock, 0, 0, 0))  # 200 ranks were left
    assert (two["buyers"], two["tickets"], two["state"]) == (0, 0, "open")
