"""Guichet with one extra route that makes exactly one EVALSHA (a room heartbeat on rooms that
do not exist: one read), to price the store path: what every state-changing request pays on
top of the HTTP stack."""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web

from guichet import openapi, webio, wire
from guichet.app import create_app
from guichet.config import Settings, load_settings
from guichet.room.service import HEARTBEAT
from guichet.server import serve
from guichet.state import STORE
from guichet.store import keys

_subjects = itertools.cycle(range(10_000))


class Hit(wire.Reply):
    allowed: bool


@openapi.endpoint("benchmark: one EVALSHA", response=Hit)
async def one_evalsha(request: web.Request) -> web.Response:
    k = keys.RoomKeys(f"bench-{next(_subjects)}")
    code, _ = await request.app[STORE].scripts(HEARTBEAT, [k.cfg, k.active], ["a"])
    return webio.respond(Hit(allowed=code == b"ok"))


def factory(settings: Settings, **kw: Any) -> web.Application:
    app = create_app(settings, **kw)
    app.router.add_get("/bench/evalsha", one_evalsha)
    return app


def main(port: int, redis_url: str) -> int:
    settings = load_settings(
        None,
        overrides={
            "server": {"port": port},
            "redis": {"url": redis_url},
            "logging": {"access_log": False, "level": "WARNING"},
        },
    )
    return serve(settings, factory)


if __name__ == "__main__":
    import sys

    raise SystemExit(main(int(sys.argv[1]), sys.argv[2]))
