"""The HTTP edge of a real ``guichet serve``: a taken port (serve and demo exit 2), and
slowloris plus 2,000 idle connections under a lowered open-files limit."""

from __future__ import annotations

import os
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from guichet.app import create_app
from guichet.config import Settings
from guichet.embedded import free_port
from guichet.server import PORT_IN_USE, run_worker, supervise
from tests.e2e.processes import ROOT, Served, guichet

pytestmark = pytest.mark.slow


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port the test listens on (as another server would)."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_taken_port_exits_2_and_says_so(
    tmp_path: Path, held_port: int, workers: str
) -> None:
    done = run(guichet("serve", "--port", str(held_port), "--workers", workers), tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"port {held_port} on 127.0.0.1 is in use" in done.stderr
    assert not (tmp_path / ".guichet/data/guichet-valkey.json").exists()  # nothing started


def test_demo_on_a_taken_port_exits_2_and_says_so(tmp_path: Path, held_port: int) -> None:
    done = run(guichet("demo", "--workdir", str(tmp_path / "demo"), "--port", str(held_port)),
               tmp_path)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"port {held_port} on 127.0.0.1 is in use" in done.stderr
    # no foreign server was asked for anything (the held port's number may itself hold "401")
    told = done.stderr.replace(str(held_port), "<port>")
    for sign in ("401", "Unauthorized", "Traceback"):
        assert sign not in told, told


def _lowered_nofile() -> None:  # pragma: no cover - runs in the child before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096))


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setblocking(False)
    return sock


def _get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _closed_by_server(socks: list[socket.socket], within_s: float) -> dict[int, bytes]:
    """Wait until the server closed every socket; what each received (by fileno)."""
    got: dict[int, bytes] = {s.fileno(): b"" for s in socks}
    open_ = {s.fileno(): s for s in socks}
    poller = select.epoll()
    for s in socks:
        poller.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
    deadline = time.monotonic() + within_s
    try:
        while open_ and time.monotonic() < deadline:
            for fd, _ in poller.poll(1.0):
                try:
                    data = open_[fd].recv(65536)
                except ConnectionResetError:
                    data = b""
                if data:
                    got[fd] += data
                    continue
                poller.unregister(fd)
                del open_[fd]
    finally:
        poller.close()
    assert not open_, f"{len(open_)} connections still open after {within_s} s"
    return got


def test_slowloris_and_2000_idle_connections_do_not_starve_other_clients(
    tmp_path: Path,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 6000:
        pytest.skip(f"the test needs 6000 descriptors (hard limit {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 6000), hard))
    port = free_port()
    env = {"GUICHET_SERVER_HEADER_TIMEOUT_S": "2", "GUICHET_SERVER_KEEPALIVE_TIMEOUT_S": "4",
           "GUICHET_LOGGING_ACCESS_LOG": "false"}  # fmt: skip
    served = Served(guichet("serve", "--port", str(port)), cwd=tmp_path, env=env,
                    preexec_fn=_lowered_nofile)  # fmt: skip
    idle: list[socket.socket] = []
    slow: list[socket.socket] = []
    try:
        limit = served.wait_msg("open files limit")
        assert (limit["soft"], limit["hard"]) == (4096, 4096)  # raised from 1024
        served.wait_msg("listening", port=port)
        idle += [_connect(port) for _ in range(2000)]
        slow += [_connect(port) for _ in range(300)]
        for sock in slow:
            sock.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
        assert _get(port).startswith(b"HTTP/1.1 200")  # 2,300 held, far above 1,024
        for sock in slow:
            sock.send(b"a")  # still dribbling: the head's deadline runs from its first byte
        answers = _closed_by_server(slow, within_s=30)
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers.values())
        assert all(a == b"" for a in _closed_by_server(idle, within_s=30).values())
        assert _get(port).startswith(b"HTTP/1.1 200")
    finally:
        for sock in idle + slow:
            sock.close()
        served.stop()


def test_a_worker_losing_the_port_race_exits_2_and_is_not_restarted(
    settings: Settings, held_port: int
) -> None:
    """The start-up check passed, then someone took the port: the bind fails in the worker."""
    taken = msgspec.structs.replace(settings.server, port=held_port)
    one = msgspec.structs.replace(settings, server=taken)
    assert run_worker(one, None, 0) == PORT_IN_USE  # returns, does not hang
    two = msgspec.structs.replace(one, server=msgspec.structs.replace(taken, workers=2))
    assert supervise(two, None, create_app) == PORT_IN_USE  # no restart loop
