"""The HTTP edge of a worker: connection limits aiohttp lacks, the port check, open files.

aiohttp bounds one header line and the header count, closes idle keep-alive connections,
and answers parser errors in text/plain. :class:`GuardedHandler` adds what it lacks: a
request head must arrive whole within ``server.header_timeout_s`` of its first byte and
within ``server.max_header_bytes`` (slowloris, header floods), and protocol errors are
problem+json. Body read timeouts are in :func:`guichet.webio.read_json` and
:func:`guichet.webio.read_large`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import http_exceptions, web
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler, _ErrInfo
from aiohttp.web_request import BaseRequest

from guichet import errors, metrics, wire
from guichet.config import ServerConfig

log = logging.getLogger("guichet.edge")

SERVER_HEADER = "guichet"
REFUSED_MESSAGE = "bad request refused by the HTTP parser"
LINGER_S = 2.0  # how long a refused connection's remaining bytes are drained before closing


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` (a plain bind fails, even against a
    SO_REUSEPORT holder). Port 0 is never in use."""
    if port == 0:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one (each connection is a descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft, hard


def _problem_bytes(problem: errors.Problem) -> bytes:
    """A whole HTTP/1.1 problem+json answer that closes the connection (no request object)."""
    body = wire.encode(problem.body("/"))
    head = (
        f"HTTP/1.1 {problem.status} {problem.title}\r\n"
        f"Content-Type: {errors.PROBLEM_CONTENT_TYPE}\r\nContent-Length: {len(body)}\r\n"
        f"Server: {SERVER_HEADER}\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def headers_too_large(limits: ServerConfig) -> errors.Problem:
    return errors.Problem(
        431, "headers-too-large", "Request header fields too large",
        f"the request line and headers exceed the limits (server.max_header_bytes "
        f"{limits.max_header_bytes}, server.max_header_line_bytes "
        f"{limits.max_header_line_bytes}, server.max_headers {limits.max_headers})",
    )  # fmt: skip


class HeadersTooLarge(http_exceptions.BadHttpMessage):
    """A request head beyond ``server.max_header_bytes``."""


class GuardedHandler(RequestHandler):
    """aiohttp's protocol plus a deadline and a byte budget for each request head."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = manager.limits
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._last_payload: Any = None  # the body of the last parsed head, while it streams

    def data_received(self, data: bytes) -> None:
        if self._force_close:
            return
        last = self._last_payload
        if self._upgraded or (last is not None and not last.is_eof()):
            super().data_received(data)  # body bytes: bounded by the body timeout
            return
        count = self._request_count
        self._head_bytes += len(data)
        super().data_received(data)
        if self._request_count != count:  # a whole head (or more) arrived
            if self._head_bytes > self._limits.max_header_bytes:  # else no head can be
                self._refuse_large_heads(self._request_count - count)
            self._last_payload = self._messages[-1][1] if self._messages else None
            self._head_bytes = 0
            self._cancel_head_timer()
        elif self._head_bytes > self._limits.max_header_bytes:
            self._refuse("headers_too_large", headers_too_large(self._limits))
        elif self._head_timer is None and not self._force_close:
            self._head_timer = self._loop.call_later(
                self._limits.header_timeout_s, self._head_expired
            )

    def _refuse_large_heads(self, new: int) -> None:
        """A head that arrived whole in one read is measured here: beyond the budget it is
        swapped for a protocol error, answered 431 by :meth:`handle_error`."""
        queued = self._messages
        for i in range(max(0, len(queued) - new), len(queued)):
            message = queued[i][0]
            raw_headers = getattr(message, "raw_headers", None)
            if raw_headers is None:
                continue
            size = len(getattr(message, "path", "")) + sum(
                len(name) + len(value) + 4 for name, value in raw_headers
            )
            if size > self._limits.max_header_bytes:
                too_large = HeadersTooLarge("headers too large")
                queued[i] = (_ErrInfo(431, too_large, too_large.message), EMPTY_PAYLOAD)

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._request_in_progress or self._messages:  # a pipelined head: not idle yet
            self._head_timer = self._loop.call_later(
                self._limits.header_timeout_s, self._head_expired
            )
            return
        timeout = self._limits.header_timeout_s
        self._refuse("header_timeout", errors.Problem(
            408, "request-timeout", "Request timeout",
            f"the request head did not arrive within {timeout:g} s (server.header_timeout_s)",
        ))  # fmt: skip

    def _refuse(self, reason: str, problem: errors.Problem) -> None:
        """Answer ``problem`` and close; what the client still sends is read and dropped
        for :data:`LINGER_S` (closing on unread bytes would reset and lose the answer)."""
        metrics.HTTP_EDGE_REFUSALS.labels(reason).inc()
        self._cancel_head_timer()
        self._force_close = True  # aiohttp's own data_received drops bytes from now on
        if self._waiter is not None:
            self._waiter.cancel()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(_problem_bytes(problem))
        if transport.can_write_eof():
            transport.write_eof()
            self._loop.call_later(LINGER_S, transport.close)
        else:
            transport.close()

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Protocol errors (bad request line, header limits) as problem+json."""
        if not isinstance(exc, http_exceptions.HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        limits_hit = isinstance(exc, http_exceptions.LineTooLong | HeadersTooLarge) or (
            "Too many headers" in str(exc)
        )
        if limits_hit:
            problem = headers_too_large(self._limits)
            metrics.HTTP_EDGE_REFUSALS.labels("headers_too_large").inc()
        else:
            # the first line only: aiohttp appends the raw bytes (a credential?) after it
            first = str(exc.message or "").splitlines()[:1]
            problem = errors.malformed(f"not a valid HTTP request: {''.join(first)}"[:200])
        # aiohttp would log the raw offending line (it may hold a credential): one WARNING
        # naming the error class instead, never a byte of what the client sent.
        log.warning(
            REFUSED_MESSAGE,
            extra={"error": type(exc).__name__, "status": problem.status, "remote": request.remote},
        )
        response = web.Response(
            body=wire.encode(problem.body("/")),
            status=problem.status,
            headers={"Server": SERVER_HEADER, "X-Content-Type-Options": "nosniff"},
            content_type=errors.PROBLEM_CONTENT_TYPE,
        )
        response.force_close()
        return response


Dispatch = Callable[[web.Request], Awaitable[web.StreamResponse]]


class GuardedServer(web.Server):
    """aiohttp's connection factory, making :class:`GuardedHandler` protocols."""

    def __init__(
        self,
        base: web.Server,
        limits: ServerConfig,
        handler: Dispatch | None = None,
    ) -> None:
        super().__init__(
            cast(Any, handler) or base.request_handler,  # its requests are web.Request
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            **base._kwargs,
        )
        self.limits = limits

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)


#: Builds a worker's request handler from the started application (routes frozen): the
#: application's own dispatch for everything it does not serve itself (see app.dispatcher).
Dispatcher = Callable[[web.Application], "Dispatch"]


class EdgeRunner(web.AppRunner):
    """``AppRunner`` whose connections are guarded (see the module doc)."""

    def __init__(
        self,
        app: web.Application,
        limits: ServerConfig,
        dispatcher: Dispatcher | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits
        self._dispatcher = dispatcher

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()  # runs the app's start-up: routes are final
        handler = self._dispatcher(self.app) if self._dispatcher is not None else None
        return GuardedServer(base, self._limits, handler)


def make_runner(
    app: web.Application,
    limits: ServerConfig,
    dispatcher: Dispatcher | None = None,
    **kwargs: Any,
) -> EdgeRunner:
    """The runner of one worker, with the edge limits and timeouts of ``server.*``."""
    return EdgeRunner(
        app,
        limits,
        dispatcher,
        keepalive_timeout=limits.keepalive_timeout_s,
        max_line_size=limits.max_header_line_bytes,
        max_field_size=limits.max_header_line_bytes,
        max_headers=limits.max_headers,
        lingering_time=min(10.0, limits.body_timeout_s),
        **kwargs,
    )
