"""The application factory: middlewares, shared state, background tasks, routes."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import UrlMappingMatchInfo
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from guichet import edge, errors, landing, metrics, ops, streams, webio, wire
from guichet.audit import notes as audit_notes
from guichet.audit import routes as audit_routes
from guichet.audit import web as audit_web
from guichet.auth import Verifier
from guichet.config import Settings
from guichet.draw import routes as draw_routes
from guichet.draw import service as draw_service
from guichet.eticket import routes as eticket_routes
from guichet.eticket import service as eticket_service
from guichet.privacy import routes as privacy_routes
from guichet.programme import routes as programme_routes
from guichet.room import page as room_page
from guichet.room import revocation as room_revocation
from guichet.room import routes as room_routes
from guichet.room import service as room_service
from guichet.shop import routes as shop_routes
from guichet.shop import service as shop_service
from guichet.state import (
    BODY_TIMEOUT,
    REDIS_URL,
    REQUEST_ID,
    SETTINGS,
    SLOTS,
    STORE,
    VERIFIER,
    WORKER_ID,
)
from guichet.store.client import connect

log = logging.getLogger("guichet.app")

#: Every Lua script the service runs; loaded at start-up and checked by /readyz.
SCRIPTS = (
    *room_service.SCRIPTS,
    *room_revocation.SCRIPTS,
    *draw_service.SCRIPTS,
    *shop_service.SCRIPTS,
    *eticket_service.SCRIPTS,
    *programme_routes.SCRIPTS,
    *audit_notes.SCRIPTS,
    *privacy_routes.SCRIPTS,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MAX_REQUEST_ID = 128
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


_request_ids = itertools.count(1)
_REQUEST_ID_PREFIX = f"{os.getpid():x}-{secrets.token_hex(3)}-"


def _request_id(request: web.Request) -> str:
    """The caller's ``X-Request-Id`` when sane, else a cheap unique one (no syscall)."""
    incoming = request.headers.get("X-Request-Id", "")
    if 0 < len(incoming) <= _MAX_REQUEST_ID and incoming.isascii() and incoming.isprintable():
        return incoming
    return f"{_REQUEST_ID_PREFIX}{next(_request_ids):x}"


def _route_label(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


_HTTP_SLUGS = {
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    413: ("body-too-large", "Request body too large"),
}


def _as_problem(request: web.Request, exc: Exception, limit: int) -> errors.Problem:
    """Map any failure to a problem; a 500 logs the traceback and returns no internals."""
    if isinstance(exc, errors.Problem):
        return exc
    if isinstance(exc, web.HTTPException):
        slug, title = _HTTP_SLUGS.get(exc.status, ("http-error", exc.reason))
        detail = {
            404: f"no resource at {request.path}",
            405: f"{request.method} is not allowed here; allowed: {exc.headers.get('Allow', '')}",
            413: f"the body exceeds {limit} bytes (server.max_body_bytes)",
        }.get(exc.status, exc.text or exc.reason)
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return errors.Problem(exc.status, slug, title, detail, headers=headers)
    request_id = request.get(REQUEST_ID)
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        log.error(
            "redis unavailable", extra={"request_id": request_id, "error": type(exc).__name__}
        )
        return errors.Problem(
            503,
            "unavailable",
            "Service unavailable",
            "storage is unreachable; retry shortly",
            retry_after_s=1,
        )
    log.error("unhandled error", exc_info=exc, extra={"request_id": request_id})
    return errors.Problem(
        500, "internal", "Internal error", f"something went wrong; quote request id {request_id}"
    )


def _problem_response(request: web.Request, problem: errors.Problem) -> web.Response:
    metrics.HTTP_PROBLEMS.labels(problem.slug).inc()
    response = web.Response(
        body=wire.encode(problem.body(errors.instance_of(request.path))),
        status=problem.status,
        headers=problem.headers,
    )
    response.content_type = errors.PROBLEM_CONTENT_TYPE
    return response


@web.middleware
async def front(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one middleware: request id in and out, body limit, errors as problem+json,
    in-flight gauge, count and latency by route template. One layer, on every request."""
    request_id = _request_id(request)
    request[REQUEST_ID] = request_id
    tally = metrics.HTTP
    timed = tally.sample()
    start = time.perf_counter() if timed else 0.0
    tally.in_flight += 1
    limit = getattr(request.match_info.handler, webio.BODY_LIMIT_ATTR, None) or (
        request.app[SETTINGS].server.max_body_bytes
    )
    try:
        if request.content_length is not None and request.content_length > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
        verifier = request.app[VERIFIER]
        if verifier.remote is not None:  # security.jwks_url: an unknown kid refreshes first
            await verifier.ensure_kid(request.headers.get(hdrs.AUTHORIZATION))
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _problem_response(request, _as_problem(request, exc, limit))
    except Exception as exc:
        response = _problem_response(request, _as_problem(request, exc, limit))
    finally:
        tally.in_flight -= 1
    response.headers["X-Request-Id"] = request_id
    method = request.method if request.method in _METHODS else "OTHER"  # bounded label
    route = _route_label(request)
    tally.done(route, method, response.status)
    if timed:
        metrics.http_children(route, method, response.status)[1].observe(
            time.perf_counter() - start
        )
    return response


STATUS_PATH = "/v1/rooms/{room}/status"
_STATUS_HEAD, _STATUS_TAIL = STATUS_PATH.split("{room}")


def _status_room(raw_path: str) -> str | None:
    """The room of a raw request target ``/v1/rooms/<room>/status[?query]`` whose room is a
    plain slug (no escape, no slash: the router would match it the same), else None."""
    path = raw_path.partition("?")[0]
    if not (path.startswith(_STATUS_HEAD) and path.endswith(_STATUS_TAIL)):
        return None
    room = path[len(_STATUS_HEAD) : -len(_STATUS_TAIL)]
    return room if wire.valid_slug(room) else None


def dispatcher(app: web.Application) -> Handler:
    """The worker's request handler (``edge.make_runner``): with ``server.fast_status``, a
    ``GET`` of the status poll is matched on its raw path and handed to :func:`front` with the
    route's handler, skipping the router's walk and aiohttp's dispatch (the poll's floor);
    every other request, and any status request the fast match is unsure of (an escaped or
    odd path, a body, ``Expect``), goes through the application as usual. The answer is the
    same either way: the same middleware, handler, response hooks and metrics label."""
    slow = app._handle
    if not app[SETTINGS].server.fast_status or tuple(app.middlewares) != (front,):
        return slow  # another middleware would be skipped: the routed path only
    route = next(
        r for r in app.router.routes() if r.method == "GET" and r.resource is not None
        and r.resource.canonical == STATUS_PATH
    )  # fmt: skip
    handler = route.handler

    async def dispatch(request: web.Request) -> web.StreamResponse:
        if (
            request.method == "GET"
            and (room := _status_room(request.raw_path)) is not None
            and not request.body_exists
            and hdrs.EXPECT not in request.headers
        ):
            info = UrlMappingMatchInfo({"room": room}, route)
            info.add_app(app)
            info.freeze()
            request._match_info = info
            return await front(request, handler)
        return await slow(request)

    return dispatch


async def _edge_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer, streams included: no version advertised, no MIME sniffing."""
    response.headers["Server"] = edge.SERVER_HEADER
    response.headers["X-Content-Type-Options"] = "nosniff"


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = connect(settings.redis, app.get(REDIS_URL), SCRIPTS)
    app[STORE] = store
    try:
        await store.scripts.load_all()
    except (RedisError, OSError) as exc:
        # Start anyway: /readyz reports 503 and loads the scripts once Redis answers.
        log.warning("redis not reachable at start-up", extra={"error": type(exc).__name__})
    yield
    await store.close()


async def _jwks_ctx(app: web.Application) -> AsyncIterator[None]:
    """``security.jwks_url``: a first fetch at start-up, then refreshes (jwks.py)."""
    remote = app[VERIFIER].remote
    if remote is None:
        yield
        return
    async with remote.running():
        yield


async def _loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(metrics.probe_loop_lag())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    metrics.HTTP.flush()


def create_app(
    settings: Settings, *, redis_url: str | None = None, worker_id: int = 0
) -> web.Application:
    """Build one worker's application. ``redis_url`` is the embedded server's, when used."""
    app = web.Application(
        middlewares=[front],
        client_max_size=settings.server.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[WORKER_ID] = worker_id
    app[VERIFIER] = Verifier.from_config(settings.security)
    app[audit_web.DIGESTER] = audit_web.digester(settings.audit)
    app[SLOTS] = streams.StreamSlots(settings.rooms)
    app[BODY_TIMEOUT] = settings.server.body_timeout_s
    app.on_response_prepare.append(_edge_headers)
    if redis_url is not None:
        app[REDIS_URL] = redis_url
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_jwks_ctx)
    app.cleanup_ctx.append(_loop_lag_ctx)
    app.cleanup_ctx.append(ops.readiness_probe_ctx)
    ops.setup_routes(app)
    room_routes.setup(app)
    room_page.setup_routes(app)
    landing.setup_routes(app)
    draw_routes.setup(app)
    shop_routes.setup(app)
    eticket_routes.setup(app)
    programme_routes.setup(app)
    audit_routes.setup(app)
    privacy_routes.setup(app)
    app.on_startup.append(ops.freeze_openapi)
    metrics.mark_build_info()
    return app
