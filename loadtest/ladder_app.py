"""The baseline with one more thing at a time, to price what a status poll pays on top of a
bare endpoint (``python -m loadtest.bench --ladder``):

    python -m loadtest.ladder_app PORT STEP

- ``route``: a status-sized JSON reply (a real ``Status`` body, msgspec-encoded once) on the
  dynamic route ``/v1/rooms/{room}/status`` among the service's other routes;
- ``middleware``: plus one pass-through middleware (aiohttp's middleware machinery);
- ``request-id``: plus an ``X-Request-Id`` response header, made as ``guichet.app`` makes it;
- ``metrics``: plus the front middleware's bookkeeping (in-flight gauge, counter, histogram);
- ``encode``: plus encoding the reply per request (``webio.respond`` of a ``Status``).

Each step includes the previous ones; the real ``front`` middleware and status handler then
add their remaining work (error handling, ticket lookup, ``Runtime.status``).
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Awaitable, Callable

import uvloop
from aiohttp import web

from guichet import metrics, webio, wire
from guichet.room import model

STEPS = ("route", "middleware", "request-id", "metrics", "encode")

_status = model.Status(
    room="bench",
    state="waiting",
    number=12_000,
    position=7_001,
    ahead=7_000,
    eta_s=350,
    serving=5_000,
    admission_rate=20.0,
    poll_after_ms=30_000,
    opens_at="2026-11-23T12:00:00Z",
    closes_at="2026-11-24T12:00:00Z",
)
_body = wire.encode(_status)
_ids = itertools.count(1)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build(step: str) -> web.Application:
    level = STEPS.index(step)
    middlewares = []
    if level >= 1:

        @web.middleware
        async def passthrough(request: web.Request, handler: Handler) -> web.StreamResponse:
            if level < 2:
                return await handler(request)
            start = time.perf_counter()
            if level >= 3:
                metrics.HTTP_IN_FLIGHT.inc()
            try:
                response = await handler(request)
            finally:
                if level >= 3:
                    metrics.HTTP_IN_FLIGHT.dec()
            response.headers["X-Request-Id"] = f"ladder-{next(_ids):x}"
            if level >= 3:
                resource = request.match_info.route.resource
                route = resource.canonical if resource is not None else "unmatched"
                count, latency = metrics.http_children(route, request.method, response.status)
                count.inc()
                latency.observe(time.perf_counter() - start)
            return response

        middlewares.append(passthrough)

    async def status(request: web.Request) -> web.Response:
        if level >= 4:
            return webio.respond(_status)
        return web.Response(body=_body, content_type="application/json")

    async def other(request: web.Request) -> web.Response:
        return web.Response(body=b"{}", content_type="application/json")

    app = web.Application(middlewares=middlewares)
    r = app.router
    # The service's route table shape, so that resolving costs what it costs there.
    for path in (
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/me",
        "/v1/admin/status",
        "/.well-known/jwks.json",
        "/v1/admin/rooms",
    ):
        r.add_get(path, other)  # fmt: skip
    r.add_post("/v1/rooms/{room}/join", other)
    r.add_get("/v1/rooms/{room}/status", status)
    r.add_get("/v1/rooms/{room}/events", other)
    r.add_post("/v1/rooms/{room}/admit", other)
    r.add_post("/v1/rooms/{room}/leave", other)
    r.add_post("/v1/rooms/{room}/heartbeat", other)
    r.add_get("/v1/admin/rooms/{room}", other)
    r.add_put("/v1/admin/rooms/{room}", other)
    return app


def main() -> None:
    port, step = int(sys.argv[1]), sys.argv[2]
    if step not in STEPS:
        raise SystemExit(f"step must be one of {', '.join(STEPS)}")
    uvloop.install()
    web.run_app(build(step), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
