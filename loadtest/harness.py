"""Load-test plumbing shared by the benchmark and the Locust runner: start a real
``python -m guichet serve`` on loopback with a private config, mint tokens with its dev issuer
key, and create a room through the admin API.

Plain blocking code (``urllib``): the runners are scripts, not services. Every wait is bounded
and every process started here is stopped by the context manager that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from guichet import auth
from guichet.config import Settings, load_settings
from guichet.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]

#: Join limits for load tests: every simulated person shares 127.0.0.1, and benchmarks repeat
#: the same accounts many times a second. 60 000 000 a minute is one per microsecond, the
#: finest interval join.lua's GCRA can hold (a 0 µs interval would make its ``SET … PX 0``
#: fail), so the limiter still runs — and costs what it costs — but never refuses.
GENEROUS_JOIN_LIMITS: dict[str, int] = {
    "join_per_ip_per_min": 60_000_000,
    "join_ip_burst": 1_000_000,
    "join_per_account_per_min": 60_000_000,
    "join_account_burst": 1_000_000,
}


def stop_process(proc: subprocess.Popen[Any], grace_s: float = 15.0) -> int:
    """SIGTERM, then SIGKILL if it has not exited within ``grace_s``; returns its exit code."""
    proc.terminate()
    try:
        return proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@dataclass
class Issuer:
    """Mints account and admin tokens the server accepts (its development issuer)."""

    key: Ed25519PrivateKey
    issuer: str
    audience: str
    admin_audience: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Issuer:
        sec = settings.security
        return cls(
            auth.load_or_create_dev_key(sec.dev_issuer_key_file),
            sec.issuer,
            sec.audience,
            sec.admin_audience,
        )

    def account(self, account: str, ttl_s: int = 3600) -> str:
        return auth.mint(
            self.key, issuer=self.issuer, audience=self.audience, subject=account, ttl_s=ttl_s
        )

    def admin(self, *scopes: str, ttl_s: int = 600) -> str:
        return auth.mint(
            self.key,
            issuer=self.issuer,
            audience=self.admin_audience,
            subject="admin:loadtest",
            ttl_s=ttl_s,
            scopes=list(scopes),
        )


def http_json(
    method: str,
    url: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 10.0,
) -> tuple[int, Any]:
    """One blocking JSON request; returns (status, decoded body or None). No exception on 4xx."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http only)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def room_spec(
    *,
    opens_in_s: float = 0.0,
    open_for_s: float = 86_400.0,
    rate_per_s: float = 100.0,
    max_active: int = 1000,
    idle_timeout_s: int = 900,
    mode: str = "shuffle-then-fifo",
) -> dict[str, Any]:
    """A RoomSpec JSON body (see ``guichet.room.model.RoomSpec``)."""
    opens = datetime.now(UTC) + timedelta(seconds=opens_in_s)
    return {
        "opens_at": opens.isoformat().replace("+00:00", "Z"),
        "closes_at": (opens + timedelta(seconds=open_for_s)).isoformat().replace("+00:00", "Z"),
        "rate_per_s": rate_per_s,
        "max_active": max_active,
        "audience": "loadtest-shop",
        "target_url": "https://shop.invalid/enter",
        "idle_timeout_s": idle_timeout_s,
        "mode": mode,
    }


def admin_put(base_url: str, issuer: Issuer, path: str, body: Any, scope: str) -> Any:
    """``PUT /v1/admin/<path>`` with an admin token of ``scope``: the answer, or RuntimeError
    unless 200/201."""
    headers = {"Authorization": f"Bearer {issuer.admin(scope)}"}
    status, answer = http_json("PUT", f"{base_url}/v1/admin/{path}", body, headers, timeout_s=60)
    if status not in (200, 201):
        raise RuntimeError(f"PUT /v1/admin/{path} failed: HTTP {status} {answer}")
    return answer


def put_room(base_url: str, issuer: Issuer, room: str, spec: Mapping[str, Any]) -> Any:
    """Create or replace ``room`` through ``PUT /v1/admin/rooms/{room}``; returns its stats."""
    return admin_put(base_url, issuer, f"rooms/{room}", spec, "rooms:write")


def draw_spec(closes_in_s: float, strata: tuple[str, ...] = ("general",)) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "registration_opens_at": (now - timedelta(seconds=1)).isoformat(),
        "registration_closes_at": (now + timedelta(seconds=closes_in_s)).isoformat(),
        "strata": list(strata),
        "default_stratum": strata[-1],
    }


def put_draw(base_url: str, issuer: Issuer, draw: str, spec: Mapping[str, Any]) -> Any:
    """Create or replace ``draw`` through ``PUT /v1/admin/draws/{draw}``."""
    return admin_put(base_url, issuer, f"draws/{draw}", spec, "draws:write")


def draw_public(base_url: str, draw: str) -> Any:
    status, body = http_json("GET", f"{base_url}/v1/draws/{draw}")
    if status != 200:
        raise RuntimeError(f"reading draw {draw!r} failed: HTTP {status} {body}")
    return body


def room_stats(base_url: str, issuer: Issuer, room: str) -> Any:
    status, body = http_json(
        "GET",
        f"{base_url}/v1/admin/rooms/{room}",
        headers={"Authorization": f"Bearer {issuer.admin('rooms:read')}"},
    )
    if status != 200:
        raise RuntimeError(f"reading room {room!r} failed: HTTP {status} {body}")
    return body


def wait_ready(
    base_url: str, timeout_s: float = 30.0, proc: subprocess.Popen[Any] | None = None
) -> None:
    """Block until ``GET /readyz`` answers 200 (Redis up, scripts loaded), bounded."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before it was ready")
        try:
            status, last = http_json("GET", f"{base_url}/readyz", timeout_s=1.0)
            if status == 200:
                return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{base_url} not ready after {timeout_s:.0f} s (last: {last})")


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child server: no GUICHET_* from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return {**env, **(extra or {})}


def merge_config(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on it, tables merged key by key (a new dict)."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_assignment(text: str) -> dict[str, Any]:
    """``redis.data_plane=pool`` -> ``{"redis": {"data_plane": "pool"}}``: a dotted TOML key
    and a TOML value (a bare word that is not TOML is taken as a string)."""
    key, sep, raw = text.partition("=")
    parts = [p.strip() for p in key.split(".")]
    if not sep or len(parts) < 2 or not all(parts):
        raise ValueError(f"{text!r}: expected SECTION.KEY=VALUE (e.g. redis.data_plane=pool)")
    try:
        value: Any = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    for part in reversed(parts):
        value = {part: value}
    return value  # type: ignore[no-any-return]


@dataclass
class GuichetServer:
    """``python -m guichet serve`` in its own process: embedded Valkey in ``workdir/data``,
    dev issuer key, ticket secret and admission keys in ``workdir``, 127.0.0.1 on a free port.

    ``rooms`` and other sections override the generated config (e.g. join limits).
    """

    workdir: Path
    port: int = 0
    workers: int = 1
    rooms: Mapping[str, Any] = field(default_factory=lambda: dict(GENEROUS_JOIN_LIMITS))
    security: Mapping[str, Any] = field(default_factory=dict)
    log_level: str = "WARNING"
    redis_url: str | None = None
    #: What runs after the interpreter: ``-m guichet`` (a patched launcher for experiments)
    launcher: tuple[str, ...] = ("-m", "guichet")
    #: Config values laid over the generated ones, as nested tables (``{"redis": {…}}``):
    #: ``prepare`` loads the result, so an unknown key fails before the server starts.
    overrides: Mapping[str, Any] = field(default_factory=dict)
    #: Another checkout whose ``server/`` runs instead of the installed one (the runner's
    #: ``--compare NAME@DIR``); the config written must be one that code accepts.
    source: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        if not self.port:
            self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.workdir / "guichet.toml"

    @property
    def log_file(self) -> Path:
        return self.workdir / "server.log"

    def config(self) -> dict[str, dict[str, Any]]:
        w = self.workdir
        redis: dict[str, Any] = {"data_dir": str(w / "data")}
        if self.redis_url:
            redis["url"] = self.redis_url
        config: dict[str, dict[str, Any]] = {
            "server": {"host": "127.0.0.1", "port": self.port, "workers": self.workers},
            "redis": redis,
            "security": {"dev_issuer_key_file": str(w / "dev-issuer.pem"), **self.security},
            "rooms": {
                "ticket_secret_file": str(w / "ticket-secret"),
                "signing_key_dir": str(w / "admission-keys"),
                **self.rooms,
            },
            "draws": {"signing_key_dir": str(w / "draw-signing-keys")},
            "logging": {"level": self.log_level, "access_log": False},
        }
        return merge_config(config, self.overrides)

    def settings(self) -> Settings:
        return load_settings(self.config_file, environ={})

    def issuer(self) -> Issuer:
        return Issuer.from_settings(self.settings())

    def prepare(self) -> None:
        """Write the config and the dev issuer key (tokens can be minted before the start)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(tomli_w.dumps(self.config()))
        settings = self.settings()  # validates the config before a process starts
        auth.load_or_create_dev_key(settings.security.dev_issuer_key_file)

    def start(self, timeout_s: float = 30.0) -> None:
        if not self.config_file.exists():
            self.prepare()
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *self.launcher, "--config", str(self.config_file), "serve"],
                cwd=self.workdir,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        try:
            wait_ready(self.url, timeout_s, self.proc)
        except Exception:
            self.stop()
            raise RuntimeError(f"guichet serve did not start:\n{self.log_tail()}") from None

    def _env(self) -> dict[str, str]:
        env = _clean_env()
        if self.source is not None:  # its server/ first on the path, before the install
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(self.source / "server"), env.get("PYTHONPATH")) if p
            )
        return env

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (drain, stop the embedded Valkey), then SIGKILL after ``timeout_s``."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def __enter__(self) -> GuichetServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def guichet_server(workdir: Path | None = None, **kw: Any) -> Iterator[GuichetServer]:
    """A started :class:`GuichetServer` in ``workdir`` (a temporary folder when None)."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="guichet-lt-")))
        server = stack.enter_context(GuichetServer(workdir, **kw))
        yield server
