"""The programme's HTTP routes: each part adds its own (pool and allocations, people, …)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from guichet.background import Periodic
from guichet.programme import (
    access,
    acting,
    declarations,
    monitor,
    people_routes,
    pool_routes,
    tickets_routes,
)
from guichet.state import SETTINGS, STORE

SCRIPTS = (*pool_routes.SCRIPTS, *people_routes.SCRIPTS, *tickets_routes.SCRIPTS,
           *declarations.SCRIPTS, *access.SCRIPTS, *acting.SCRIPTS)  # fmt: skip


async def _gauges_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    gauges = Periodic("programme gauges", app[SETTINGS].programme.monitor_interval_s,
                      lambda: monitor.refresh(store))  # fmt: skip
    gauges.start()
    yield
    await gauges.stop()


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_gauges_ctx)
    pool_routes.setup(app)
    people_routes.setup(app)
    tickets_routes.setup(app)
    declarations.setup(app)
