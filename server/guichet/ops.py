"""Ops endpoints: liveness, readiness, metrics, the OpenAPI document, and who-am-I checks."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from aiohttp import web

from guichet import __version__, background, metrics, openapi, webio, wire
from guichet.state import (
    OPENAPI_CACHE,
    SETTINGS,
    STORE,
    VERIFIER,
    WORKER_ID,
    account_of,
    admin_of,
)

SCOPE_OPS_READ = "ops:read"


class Health(wire.Reply):
    status: str
    version: str
    worker: int


class Readiness(wire.Reply):
    status: str
    reason: str
    redis: str
    scripts: list[str]


class Me(wire.Reply):
    account: str
    token_expires_at: str


class AdminStatus(wire.Reply):
    subject: str
    scopes: list[str]
    version: str
    redis_mode: str
    workers: int
    pid: int


@openapi.endpoint("Liveness: the process answers", response=Health, tags=("ops",))
async def healthz(request: web.Request) -> web.Response:
    return webio.respond(Health(status="ok", version=__version__, worker=request.app[WORKER_ID]))


@openapi.endpoint(
    "Readiness: Redis reachable, every Lua script loaded, identity-provider keys fetched",
    response=Readiness,
    errors=(503,),
    tags=("ops",),
)
async def readyz(request: web.Request) -> web.Response:
    store = request.app[STORE]
    health = await store.health(request.app[SETTINGS].redis.health_timeout_s)
    keys_missing = request.app[VERIFIER].not_ready()
    ok = health.ok and keys_missing is None
    metrics.READY.set(1 if ok else 0)
    body = Readiness(
        status="ready" if ok else "not_ready",
        reason=health.reason if keys_missing is None or not health.ok else keys_missing,
        redis=store.mode,
        scripts=store.scripts.names,
    )
    if ok:
        return webio.respond(body)
    return webio.respond(body, status=503, headers={"Retry-After": "1"})


@openapi.endpoint(
    "Prometheus metrics (text exposition format, all workers)",
    content_type="text/plain",
    tags=("ops",),
)
async def metrics_handler(request: web.Request) -> web.Response:
    metrics.HTTP.flush()  # this worker's latest request counts (others flush every 250 ms)
    # Collection reads /proc and, with several workers, every worker's metric files: off-loop.
    payload, content_type = await asyncio.to_thread(metrics.exposition)
    response = web.Response(body=payload)
    response.headers["Content-Type"] = content_type
    return response


@openapi.endpoint("This OpenAPI 3.1 document", tags=("ops",))
async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI_CACHE], content_type="application/json")


@openapi.endpoint(
    "The account the bearer token identifies", response=Me, auth="account", tags=("account",)
)
async def me(request: web.Request) -> web.Response:
    account = account_of(request)
    return webio.respond(Me(account=account.id, token_expires_at=wire.rfc3339(account.expires_at)))


@openapi.endpoint(
    "Operator check: token subject and scopes, build and deployment facts",
    response=AdminStatus,
    auth="admin",
    scope=SCOPE_OPS_READ,
    tags=("admin",),
)
async def admin_status(request: web.Request) -> web.Response:
    admin = admin_of(request, SCOPE_OPS_READ)
    settings = request.app[SETTINGS]
    return webio.respond(
        AdminStatus(
            subject=admin.subject,
            scopes=sorted(admin.scopes),
            version=__version__,
            redis_mode=request.app[STORE].mode,
            workers=settings.server.workers,
            pid=os.getpid(),
        )
    )


READINESS_PROBE_S = 5.0


async def readiness_probe_ctx(app: web.Application) -> AsyncIterator[None]:
    """Probe readiness every few seconds for ``guichet_ready`` (an alert needs it even when
    no load balancer asks /readyz); a worker starts not ready."""
    metrics.READY.set(0)
    store, timeout_s = app[STORE], app[SETTINGS].redis.health_timeout_s
    verifier = app[VERIFIER]

    async def probe() -> None:
        ok = (await store.health(timeout_s)).ok and verifier.not_ready() is None
        metrics.READY.set(1 if ok else 0)

    probing = background.Periodic("readiness probe", READINESS_PROBE_S, probe)
    probing.start()
    yield
    await probing.stop()


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/v1/me", me)
    app.router.add_get("/v1/admin/status", admin_status)


async def freeze_openapi(app: web.Application) -> None:
    """Build the document once, when every component has added its routes."""
    app[OPENAPI_CACHE] = wire.encode(openapi.build_document(app))
