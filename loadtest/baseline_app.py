"""The yardstick: a bare aiohttp + uvloop JSON endpoint, nothing else."""

from __future__ import annotations

import sys

import msgspec
import uvloop
from aiohttp import web

_body = msgspec.json.encode({"status": "ok"})


async def ok(request: web.Request) -> web.Response:
    return web.Response(body=_body, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_get("/ok", ok)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
