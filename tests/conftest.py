"""Shared fixtures: a real Valkey (standalone per test, or a session-wide 3-primary Cluster
when ``GUICHET_TEST_REDIS=cluster``), settings pointing at it, a store, and the app served
over a real loopback socket."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
import redis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from guichet import auth
from guichet.app import SCRIPTS, create_app
from guichet.config import Settings, load_settings
from guichet.embedded import EmbeddedCluster, EmbeddedValkey
from guichet.store.client import Store, connect
from tests.served import SERVE, ProcessServer

MODE = os.environ.get("GUICHET_TEST_REDIS", "standalone")
if MODE not in ("standalone", "cluster"):
    raise RuntimeError("GUICHET_TEST_REDIS must be 'standalone' or 'cluster'")


@dataclass
class Backend:
    """What a test's Redis is: a URL (standalone) or a seed list (cluster)."""

    url: str | None
    seeds: tuple[str, ...]
    server: EmbeddedValkey | None

    @property
    def redis_section(self) -> dict[str, object]:
        if self.seeds:
            return {"cluster_seeds": list(self.seeds)}
        return {"url": self.url}


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster | None]:
    if MODE != "cluster":
        yield None
        return
    with EmbeddedCluster(tmp_path_factory.mktemp("cluster")) as built:
        yield built


@pytest.fixture
def backend(tmp_path: Path, cluster: EmbeddedCluster | None) -> Iterator[Backend]:
    """A pristine Redis for this test: its own server, or the flushed session Cluster."""
    if cluster is not None:
        for node in cluster.nodes:
            with redis.Redis(port=node.port) as client:
                client.flushall()
                client.script_flush()
        yield Backend(url=None, seeds=tuple(cluster.seeds), server=None)
        return
    with EmbeddedValkey(tmp_path / "valkey") as server:
        yield Backend(url=server.url, seeds=(), server=server)


@pytest.fixture
def private_valkey(tmp_path: Path) -> Iterator[EmbeddedValkey]:
    """A standalone server of the test's own, whatever the mode (stop/restart tests)."""
    with EmbeddedValkey(tmp_path / "private-valkey") as server:
        yield server


def make_settings(
    tmp_path: Path, redis_section: dict[str, object], **sections: dict[str, object]
) -> Settings:
    overrides: dict[str, dict[str, object]] = {
        "redis": {"data_dir": str(tmp_path / "data"), **redis_section},
        "security": {"dev_issuer_key_file": str(tmp_path / "dev-issuer.pem")},
        "rooms": {
            "ticket_secret_file": str(tmp_path / "ticket-secret"),
            "signing_key_dir": str(tmp_path / "admission-keys"),
            # the tests speak plain HTTP to 127.0.0.1, as development does (the default, Secure,
            # is tested in test_config and test_edge)
            "cookie_secure": False,
        },
        "draws": {
            "seal_key_file": str(tmp_path / "draw-seal-key"),
            "signing_key_dir": str(tmp_path / "draw-signing-keys"),
        },
        "etickets": {"signing_key_dir": str(tmp_path / "eticket-keys")},
        "programme": {
            "pseudonym_secret_file": str(tmp_path / "programme-pseudonym-secret"),
            "name_key_file": str(tmp_path / "programme-name-key"),
            "monitor_interval_s": 1.0,  # the gauges a test waits for show within a second
        },
        "audit": {
            "digest_secret_file": str(tmp_path / "audit-digest-secret"),
            "signing_key_dir": str(tmp_path / "audit-signing-keys"),
        },
        "logging": {"access_log": False},
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    empty = tmp_path / "guichet.toml"  # explicit file: a developer's ./guichet.toml never leaks in
    empty.touch()
    return load_settings(empty, environ={}, overrides=overrides)


def settings_file(settings: Settings, path: Path) -> Path:
    """The settings as a TOML file, for commands run with ``--config``."""
    import msgspec
    import tomli_w

    def no_none(value: object) -> object:
        if isinstance(value, dict):
            return {k: no_none(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [no_none(v) for v in value]
        return value

    path.write_text(tomli_w.dumps(no_none(msgspec.to_builtins(settings))))  # type: ignore[arg-type]
    return path


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(tmp_path, backend.redis_section)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    s = connect(settings.redis, scripts=SCRIPTS)
    await s.scripts.load_all()
    yield s
    await s.close()


@pytest.fixture
def app(settings: Settings) -> web.Application:
    """Built outside the event loop, as in production (start-up reads key files)."""
    return create_app(settings)


@pytest.fixture
def http_server(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path
) -> TestServer | ProcessServer:
    """What ``client`` talks to: the app in this process (built here, outside the event loop),
    or, under ``GUICHET_TEST_SERVE=workers2``, ``guichet serve --workers 2`` (tests/served.py)."""
    if SERVE == "workers2":
        return ProcessServer(settings, tmp_path / "serve")
    return TestServer(request.getfixturevalue("app"), host="127.0.0.1")


Client = TestClient[web.Request, web.Application]
"""What ``client`` is. Under ``GUICHET_TEST_SERVE=workers2`` its ``app`` is None: the tests that
reach into the app are marked ``inprocess`` and skipped there."""


@pytest.fixture
async def client(http_server: TestServer | ProcessServer) -> AsyncIterator[Client]:
    """The whole app on a real loopback socket."""
    async with cast(Client, TestClient(http_server)) as c:
        yield c


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``GUICHET_TEST_SERVE=workers2``, skip what needs the app in this process."""
    if SERVE != "workers2":
        return
    for item in items:
        marker = item.get_closest_marker("inprocess")
        if marker is not None:
            reason = marker.args[0] if marker.args else "needs the app in this process"
            item.add_marker(pytest.mark.skip(reason=f"workers2: {reason}"))
        elif "client" not in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.skip(reason="workers2: runs no `client` fixture"))


class Tokens:
    """Mints tokens with the test's dev issuer key (loaded once, outside the event loop)."""

    def __init__(self, settings: Settings) -> None:
        self.sec = settings.security
        self.key = auth.load_or_create_dev_key(self.sec.dev_issuer_key_file)

    def account(self, account: str = "acc-1", ttl_s: int = 600) -> str:
        return auth.mint(
            self.key,
            issuer=self.sec.issuer,
            audience=self.sec.audience,
            subject=account,
            ttl_s=ttl_s,
        )

    def admin(self, *scopes: str, ttl_s: int = 600) -> str:
        return auth.mint(
            self.key,
            issuer=self.sec.issuer,
            audience=self.sec.admin_audience,
            subject="admin:test",
            ttl_s=ttl_s,
            scopes=list(scopes),
        )


@pytest.fixture
def tokens(settings: Settings) -> Tokens:
    return Tokens(settings)


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def metrics_when(client: Client, ready: Callable[[str], bool], within_s: float = 15.0) -> str:
    """``/metrics`` once ``ready(text)`` holds. With several workers a request's count reaches
    the exposition at its worker's next flush (every 250 ms), so ask again until then."""
    async with asyncio.timeout(within_s):
        while True:
            text = await (await client.get("/metrics")).text()
            if ready(text):
                return text
            await asyncio.sleep(0.05)


@pytest.fixture(autouse=True)
def blockbuster(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail any async test whose code blocks the event loop (as aiohttp's own suite does)."""
    if not request.node.get_closest_marker("asyncio") and not _is_coroutine_test(request):
        yield
        return
    from blockbuster import blockbuster_ctx

    with blockbuster_ctx(["guichet"]) as bb:
        yield
        del bb


def _is_coroutine_test(request: pytest.FixtureRequest) -> bool:
    import inspect

    return inspect.iscoroutinefunction(getattr(request.node, "function", None))
