"""Reading requests and writing responses of the JSON API (the web side of :mod:`guichet.wire`):
path ids, body limits and deadlines, the content type, JSON answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from aiohttp import web

from guichet import errors, metrics
from guichet.state import BODY_TIMEOUT
from guichet.wire import JSON_CONTENT_TYPE, decode, encode, valid_slug

T = TypeVar("T")
H = TypeVar("H")


def slug_param(request: web.Request, name: str) -> str:
    """The path parameter ``name`` (a room, draw or sale id), or a 404 naming it: an id that
    is not a valid slug cannot exist."""
    value: str = request.match_info[name]
    if not valid_slug(value):
        raise errors.not_found(f"no {name} {value[:60]!r}")
    return value


#: A handler whose bodies may exceed ``server.max_body_bytes`` (e.g. a catalogue) carries its
#: own limit here, set by :func:`body_limit`, and reads ``request.content`` itself.
BODY_LIMIT_ATTR = "guichet_max_body_bytes"


def body_limit(max_bytes: int) -> Callable[[H], H]:
    """Decorator: this handler accepts bodies up to ``max_bytes``."""

    def mark(handler: H) -> H:
        setattr(handler, BODY_LIMIT_ATTR, max_bytes)
        return handler

    return mark


@contextlib.asynccontextmanager
async def _body_deadline(request: web.Request) -> AsyncIterator[None]:
    timeout = request.app.get(BODY_TIMEOUT, 30.0)
    try:
        async with asyncio.timeout(timeout):
            yield
    except TimeoutError:
        metrics.HTTP_EDGE_REFUSALS.labels("body_timeout").inc()
        raise errors.Problem(
            408, "request-timeout", "Request timeout",
            f"the body did not arrive within {timeout:g} s (server.body_timeout_s)",
            headers={"Connection": "close"},
        ) from None  # fmt: skip


async def read_large(request: web.Request, max_bytes: int) -> bytes:
    """The whole body of a route with its own limit (:func:`body_limit`); 413 beyond it."""
    parts: list[bytes] = []
    size = 0
    async with _body_deadline(request):
        while chunk := await request.content.read(1 << 16):
            size += len(chunk)
            if size > max_bytes:
                raise errors.Problem(
                    413, "body-too-large", "Request body too large",
                    f"the body exceeds {max_bytes} bytes",
                )  # fmt: skip
            parts.append(chunk)
    return b"".join(parts)


def require_json(request: web.Request) -> None:
    """415 naming ``Content-Type`` unless the body is declared ``application/json`` (the one
    request media type of the OpenAPI document)."""
    if request.content_type != JSON_CONTENT_TYPE:
        # request.content_type, not the raw header: its bytes may not even encode (surrogates)
        sent = request.content_type[:60] or "nothing"
        raise errors.Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"send the body as {JSON_CONTENT_TYPE}, not {sent}",
            errors=[errors.FieldError(field="Content-Type", detail=f"must be {JSON_CONTENT_TYPE}")],
        )


async def read_json(request: web.Request, typ: type[T]) -> T:
    """Read and validate a JSON body (415 if not JSON; 413 is raised by aiohttp's limit;
    408 if it does not arrive within ``server.body_timeout_s``)."""
    require_json(request)
    async with _body_deadline(request):
        body = await request.read()
    return decode(body, typ)


def respond(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=encode(value),
        status=status,
        content_type=JSON_CONTENT_TYPE,
        headers=headers,
    )
