"""The watchdog of the embedded Valkey: restart on the same port, retry with backoff while it
cannot, keep the data (AOF), and never restart what was stopped on purpose; and its folder
stays private."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from guichet.embedded import EmbeddedValkey
from guichet.embedded_watchdog import Watchdog


class Events(logging.Handler):
    """A threading.Event per log message of the watchdog."""

    def __init__(self) -> None:
        super().__init__()
        self.events: dict[str, threading.Event] = {}

    def __getitem__(self, msg: str) -> threading.Event:
        return self.events.setdefault(msg, threading.Event())

    def emit(self, record: logging.LogRecord) -> None:
        self[record.getMessage()].set()


@pytest.fixture
def events() -> Iterator[Events]:
    handler = Events()
    logger = logging.getLogger("guichet.embedded")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_restart_waits_for_its_port_and_keeps_the_data(tmp_path: Path, events: Events) -> None:
    server = EmbeddedValkey(tmp_path / "data", auth=True).start()
    restarted = threading.Event()
    # A 3 s first backoff: time for this test to take the port before the first restart.
    with Watchdog(server, on_restart=restarted.set, first_backoff_s=3) as watchdog:
        port, first_pid = server.port, server.process.pid if server.process else 0
        with redis.Redis.from_url(server.url) as client:
            client.set("kept", "yes")
            client.execute_command("WAITAOF", 1, 0, 5000)
        squatter = socket.socket()
        try:
            os.kill(first_pid, signal.SIGKILL)
            assert events["embedded valkey died"].wait(30)
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))  # someone took the port meanwhile
            squatter.listen()
            assert events["embedded valkey restart failed"].wait(30)
            assert not restarted.is_set()
        finally:
            squatter.close()
        assert restarted.wait(30)  # the backoff retried once the port was free again
        assert watchdog.restarts == 1
        assert server.port == port
        with redis.Redis.from_url(server.url) as client:
            assert client.get("kept") == b"yes"
    assert server.process is None  # stopped with the watchdog, not restarted
    assert watchdog.restarts == 1


def test_files_an_older_version_left_readable_become_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "appendonlydir").mkdir(parents=True)
    old_aof = data / "appendonlydir" / "appendonly.aof.1.incr.aof"
    old_aof.write_text("")
    unrelated = data / "notes.txt"  # not Valkey's: left alone
    unrelated.write_text("")
    for path in (data, data / "appendonlydir", old_aof, unrelated):
        path.chmod(0o755 if path.is_dir() else 0o644)
    with EmbeddedValkey(data, auth=True):
        assert data.stat().st_mode & 0o777 == 0o700
        assert (data / "appendonlydir").stat().st_mode & 0o777 == 0o700
        assert old_aof.stat().st_mode & 0o777 == 0o600
        assert unrelated.stat().st_mode & 0o777 == 0o644
