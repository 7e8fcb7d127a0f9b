"""Run ``guichet serve`` (or a variant) as a real process and follow its JSON log lines."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guichet.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


class Served:
    """A server process; ``wait_for`` blocks until a log line matches (an event, not a sleep)."""

    def __init__(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,  # e.g. a lowered rlimit
    ) -> None:
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=preexec_fn,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.raw.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                self.lines.put(entry)

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        for entry in self.seen:
            if match(entry):
                return entry
        while True:
            try:
                entry = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no matching log line; stderr:\n{''.join(self.raw)}"
                ) from None
            self.seen.append(entry)
            if match(entry):
                return entry

    def wait_msg(self, msg: str, timeout: float = 20.0, **fields: Any) -> dict[str, Any]:
        return self.wait_for(
            lambda e: e.get("msg") == msg and all(e.get(k) == v for k, v in fields.items()), timeout
        )

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def guichet(*args: str) -> list[str]:
    return ["-m", "guichet", *args]


def run_as_reader(
    script: str, tmp_path: Path, serve_env: dict[str, str] | None = None, timeout_s: float = 150
) -> subprocess.CompletedProcess[str]:
    """Run a README shell block by bash as its reader would (``guichet`` and ``python`` on the
    PATH, ``set -eu``) against a ``guichet serve`` started for it on a free port (``:8080``
    in the block is that port); the server is stopped afterwards."""
    port = free_port()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, command in (("guichet", f"{sys.executable} -m guichet"), ("python", sys.executable)):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "GUICHET_SERVER_PORT": str(port)}  # fmt: skip
    served = Served(guichet("serve"), cwd=tmp_path,
                    env={**(serve_env or {}), "GUICHET_SERVER_PORT": str(port)})  # fmt: skip
    try:
        served.wait_msg("listening", port=port, timeout=60)
        return subprocess.run(
            ["bash", "-c", "set -eu\n" + script.replace(":8080", f":{port}")], cwd=tmp_path,
            env=env, capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
    finally:
        served.stop()
