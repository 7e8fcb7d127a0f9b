"""The programme's HTTP routes: each part adds its own (pool and allocations, people, …)."""

from __future__ import annotations

from aiohttp import web

from guichet.programme import people_routes, pool_routes, tickets_routes

SCRIPTS = (*pool_routes.SCRIPTS, *people_routes.SCRIPTS)
SCRIPTS = (*SCRIPTS, *tickets_routes.SCRIPTS)


def setup(app: web.Application) -> None:
    pool_routes.setup(app)
    people_routes.setup(app)
    tickets_routes.setup(app)
