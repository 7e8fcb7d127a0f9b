"""An app factory with one deliberately slow route, to watch graceful shutdown drain it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from guichet import openapi
from guichet.app import create_app
from guichet.config import Settings


@openapi.endpoint("slow work", content_type="text/plain")
async def slow(request: web.Request) -> web.Response:
    logging.getLogger("test.slow").info("slow started")
    await asyncio.sleep(1.5)  # the work being drained, not a test wait
    return web.Response(text="done")


def factory(settings: Settings, **kw: Any) -> web.Application:
    app = create_app(settings, **kw)
    app.router.add_get("/slow", slow)
    return app


def main(port: int, workers: int = 1) -> int:
    from guichet.config import load_settings
    from guichet.server import serve

    settings = load_settings(None, overrides={"server": {"port": port, "workers": workers}})
    return serve(settings, factory)
