"""The ``client`` fixture's server as a real ``guichet serve --workers N`` process.

Under ``GUICHET_TEST_SERVE=workers2`` the HTTP tests talk over a socket to two worker
processes sharing the port (SO_REUSEPORT), started with the test's settings (its Redis, its key
files), instead of to an in-process ``TestServer``: what one worker writes, the other must see.
Tests that reach into the app (``client.app[...]``) or build their own app are skipped there.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import msgspec
from aiohttp.test_utils import BaseTestServer
from aiohttp.web_runner import BaseRunner
from yarl import URL

from guichet.config import Settings
from guichet.embedded import free_port
from tests.e2e.processes import Served, guichet

SERVE = os.environ.get("GUICHET_TEST_SERVE", "inprocess")
if SERVE not in ("inprocess", "workers2"):
    raise RuntimeError("GUICHET_TEST_SERVE must be 'inprocess' or 'workers2'")
WORKERS = 2


class ProcessServer(BaseTestServer):
    """A ``TestClient`` server that is ``guichet serve`` run as a process, with ``settings``."""

    def __init__(self, settings: Settings, folder: Path, workers: int = WORKERS) -> None:
        super().__init__(host="127.0.0.1", port=free_port())
        self.settings = settings
        self.folder = folder
        self.workers = workers
        self.served: Served | None = None

    async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **_: Any) -> None:
        if self.served is not None:
            return
        from tests.conftest import settings_file

        assert self.port is not None
        quick = msgspec.structs.replace(  # a stuck SSE stream must not hold the test 10 s
            self.settings,
            server=msgspec.structs.replace(self.settings.server, shutdown_timeout_s=2),
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        config = settings_file(quick, self.folder / "serve.toml")
        argv = ["--config", str(config), "serve", "--port", str(self.port)]
        argv += ["--workers", str(self.workers)]
        self.served = Served(guichet(*argv), cwd=self.folder)
        for worker in range(self.workers):
            await asyncio.to_thread(self.served.wait_msg, "listening", 60.0, worker=worker)
        self.scheme = "http"
        self._root = URL(f"http://{self.host}:{self.port}")

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        raise NotImplementedError("a process, not a runner")

    @property
    def started(self) -> bool:
        return self.served is not None

    async def close(self) -> None:
        if self.served is not None and not self._closed:
            await asyncio.to_thread(self.served.stop)
            self._closed = True
