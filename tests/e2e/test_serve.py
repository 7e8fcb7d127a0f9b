"""``guichet serve`` as a real process: embedded Valkey, workers, metrics, shutdown, orphans."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from guichet.embedded import PID_FILE, EmbeddedValkey, _ping, find_binary, free_port
from tests.conftest import metric_value
from tests.e2e.processes import Served, guichet

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


def wait_dead(pid: int, timeout: float = 10.0) -> bool:
    """Block until ``pid`` exits (pidfd would be nicer; /proc polling is bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def port() -> int:
    return free_port()


async def test_serve_starts_embedded_valkey_and_stops_it(tmp_path: Path, port: int) -> None:
    served = Served(guichet("serve", "--port", str(port)), cwd=tmp_path)
    try:
        started = served.wait_msg("embedded valkey started")
        served.wait_msg("using embedded valkey")
        served.wait_msg("listening", port=port)
        assert (tmp_path / ".guichet/data" / PID_FILE).exists()
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/readyz") as resp,
        ):
            assert resp.status == 200
            assert (await resp.json())["redis"] == "standalone"
        served.signal(signal.SIGTERM)
        assert served.wait() == 0
        assert wait_dead(started["pid"])
        assert not (tmp_path / ".guichet/data" / PID_FILE).exists()
        assert (tmp_path / ".guichet/data/appendonlydir").is_dir()
    finally:
        served.stop()


async def test_graceful_shutdown_drains_in_flight_requests(tmp_path: Path, port: int) -> None:
    served = Served(
        ["-c", f"from tests.e2e.slow_app import main; raise SystemExit(main({port}))"], cwd=tmp_path
    )
    try:
        served.wait_msg("listening", port=port)
        async with aiohttp.ClientSession() as http:
            pending = asyncio.create_task(http.get(f"http://127.0.0.1:{port}/slow"))
            await asyncio.to_thread(served.wait_msg, "slow started")
            served.signal(signal.SIGTERM)
            await asyncio.to_thread(served.wait_msg, "draining")
            resp = await pending
            assert resp.status == 200
            assert await resp.text() == "done"
            with pytest.raises(aiohttp.ClientConnectionError):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as late:
                    await late.read()
        assert await asyncio.to_thread(served.wait) == 0
    finally:
        served.stop()


async def test_metrics_from_two_workers_add_up(tmp_path: Path, port: int) -> None:
    served = Served(guichet("serve", "--port", str(port), "--workers", "2"), cwd=tmp_path)
    try:
        served.wait_msg("listening", worker=0)
        served.wait_msg("listening", worker=1)
        seen: set[int] = set()
        sent = 0
        # A fresh connection per request lets SO_REUSEPORT spread them over both workers.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            while len(seen) < 2 or sent < 60:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    seen.add((await resp.json())["worker"])
                sent += 1
                assert sent < 2000, "SO_REUSEPORT never reached the second worker"
            # Each worker adds its counts to the shared files every 250 ms: wait for them.
            async with asyncio.timeout(10):
                while True:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        text = await resp.text()
                    counted = metric_value(
                        text, "guichet_http_requests_total", route="/healthz", status="2xx"
                    )
                    if counted == sent:
                        break
                    assert counted < sent
                    await asyncio.sleep(0.05)
        assert seen == {0, 1}
        served.signal(signal.SIGTERM)
        assert served.wait() == 0
    finally:
        served.stop()


def test_killed_parent_takes_its_valkey_along(tmp_path: Path, port: int) -> None:
    """SIGKILL leaves no chance to clean up: the parent-death signal stops Valkey anyway."""
    served = Served(guichet("serve", "--port", str(port)), cwd=tmp_path)
    try:
        valkey_pid = served.wait_msg("embedded valkey started")["pid"]
        served.wait_msg("listening")
        served.signal(signal.SIGKILL)
        served.wait()
        assert wait_dead(valkey_pid)
    finally:
        served.stop()


def test_orphan_of_crashed_parent_is_stopped_on_next_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    orphan_port = free_port()
    orphan = subprocess.Popen(
        [
            find_binary(),
            "--port",
            str(orphan_port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data),
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while not _ping(orphan_port):  # a long-running orphan: up and handling signals
        assert time.monotonic() < deadline
    dead_parent = subprocess.Popen(["true"])
    dead_parent.wait()
    (data / PID_FILE).write_text(
        json.dumps({"pid": orphan.pid, "port": orphan_port, "parent_pid": dead_parent.pid})
    )
    server = EmbeddedValkey(data)
    try:
        server.start()
        assert orphan.wait(10) == 0  # SIGTERM → clean exit
        assert server.port != 0
    finally:
        server.stop()
        if orphan.poll() is None:
            orphan.kill()


def test_data_dir_of_a_live_guichet_is_refused(tmp_path: Path) -> None:
    first = EmbeddedValkey(tmp_path / "data").start()
    try:
        info = json.loads((tmp_path / "data" / PID_FILE).read_text())
        info["parent_pid"] = os.getppid()  # a live process that is not us
        (tmp_path / "data" / PID_FILE).write_text(json.dumps(info))
        with pytest.raises(Exception, match="in use"):
            EmbeddedValkey(tmp_path / "data").start()
    finally:
        first.stop()


def test_bad_config_stops_start_up(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, *guichet("serve")],
        cwd=tmp_path,
        env={**os.environ, "GUICHET_SERVER_WORKERS": "zero"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "server.workers" in result.stderr


def test_token_command_mints_verifiable_tokens(tmp_path: Path) -> None:
    from guichet import auth
    from guichet.config import SecurityConfig

    def run(*args: str) -> str:
        return subprocess.run(
            [sys.executable, *guichet("token", *args)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()

    account = run("--account", "acc-42")
    admin = run("--admin", "--scope", "ops:read", "--scope", "room:write")
    verifier = auth.Verifier.from_config(
        SecurityConfig(dev_issuer_key_file=str(tmp_path / ".guichet/dev-issuer.pem"))
    )
    assert verifier.account(account).id == "acc-42"
    assert verifier.admin(admin, "room:write").scopes == {"ops:read", "room:write"}
    assert (
        subprocess.run(
            [sys.executable, *guichet("token")], cwd=tmp_path, capture_output=True, check=False
        ).returncode
        == 2
    )


def test_start_up_log_masks_every_credential_form(tmp_path: Path) -> None:
    """The `using redis` line of a real process, for each way a password can be given."""
    closed = free_port()  # nothing listens: the server starts anyway (/readyz says 503)
    quoted = "s3cr%23t%2Fp%3Fw"
    sock = tmp_path / "none.sock"
    forms = {
        "userinfo": (f"redis://user:{quoted}@127.0.0.1:{closed}/0", "user:***@"),
        "password only": (f"redis://:{quoted}@127.0.0.1:{closed}/0", "redis://:***@"),
        "lone userinfo": (f"redis://{quoted}@127.0.0.1:{closed}/0", "redis://***@"),
        "query": (f"redis://127.0.0.1:{closed}/0?password={quoted}", "password=***"),
        "unix query": (f"unix://{sock}?db=0&password={quoted}", "&password=***"),
        "unix userinfo": (f"unix://:{quoted}@{sock}?db=0", "unix://:***@"),
        "rediss": (f"rediss://default:{quoted}@127.0.0.1:{closed}/0", "rediss://default:***@"),
    }
    runs: dict[str, tuple[Served, str]] = {}
    try:
        for name, (url, shown) in forms.items():
            env = {"GUICHET_REDIS_URL": url}
            runs[name] = (
                Served(guichet("serve", "--port", str(free_port())), tmp_path, env),
                shown,
            )
        seeds = f"app:{quoted}@127.0.0.1:{closed},127.0.0.1:{free_port()}"
        cluster = Served(
            guichet("serve", "--port", str(free_port())),
            tmp_path,
            {"GUICHET_REDIS_CLUSTER_SEEDS": seeds},
        )
        runs["cluster seeds"] = (cluster, "app:***@127.0.0.1")
        for name, (served, shown) in runs.items():
            if name == "cluster seeds":
                line = served.wait_msg("using redis cluster", timeout=60)
                assert shown in line["seeds"][0], name
            else:
                line = served.wait_msg("using redis", timeout=60)
                assert shown in line["url"], name
                served.wait_msg("listening", timeout=60)
    finally:
        for served, _ in runs.values():
            served.stop()
    for name, (served, _) in runs.items():
        assert "s3cr" not in "".join(served.raw), name


async def test_embedded_valkey_wants_a_password_and_keeps_its_files_private(
    tmp_path: Path, port: int
) -> None:
    """Under umask 022: folder 0700, files 0600, AUTH required, the password in no argv and no
    log line, and both workers and the ops commands find it."""
    previous = os.umask(0o022)
    try:
        served = Served(guichet("serve", "--port", str(port), "--workers", "2"), cwd=tmp_path)
    finally:
        os.umask(previous)
    data = tmp_path / ".guichet/data"
    try:
        valkey = served.wait_msg("embedded valkey started", timeout=60)
        served.wait_msg("listening", worker=0, timeout=60)
        served.wait_msg("listening", worker=1, timeout=60)
        password = (data / "valkey-password").read_text().strip()
        assert len(password) >= 32
        with socket.create_connection(("127.0.0.1", valkey["port"]), timeout=5) as raw:
            raw.sendall(b"GET anything\r\n")
            assert raw.recv(64).startswith(b"-NOAUTH")
        cmdline = Path(f"/proc/{valkey['pid']}/cmdline")
        assert password not in await asyncio.to_thread(cmdline.read_text)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            workers = set()
            for _ in range(200):  # both workers reach Redis with the password
                async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    assert resp.status == 200, await resp.text()
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    workers.add((await resp.json())["worker"])
                if workers == {0, 1}:
                    break
        ops = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, *guichet("outbox", "show", "paris")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ops.returncode == 0, ops.stderr
        assert password not in ops.stdout + ops.stderr
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        files = [p for p in data.rglob("*") if p.is_file()]
        assert any(p.name.endswith(".aof") for p in files)
        for path in [*files, *(p for p in data.rglob("*") if p.is_dir())]:
            expected = 0o700 if path.is_dir() else 0o600
            assert stat.S_IMODE(path.stat().st_mode) == expected, path
        served.signal(signal.SIGTERM)
        assert await asyncio.to_thread(served.wait) == 0
    finally:
        served.stop()
    assert password not in "".join(served.raw)
