"""The landing page at ``/`` (links to the API documentation, the OpenAPI document, the
public keys and the rooms open to the public; how room pages are addressed) and the API
documentation page at ``/docs``:
Swagger UI rendering ``/openapi.json`` from assets bundled in the package
(``static/vendor/swagger-ui``, see its VERSION), never a CDN.

Swagger UI sets inline styles and writes HTML (rendered Markdown), so ``/docs`` runs under
its own policy: scripts and connections from this origin only, inline styles allowed, no
Trusted Types. The landing page has no script at all.

The room list comes from this worker's snapshot of the rooms (``Rooms``, kept by the pacer):
no Redis call per request. A room appears once it is listed (``listed``, default true) and
disappears once closed (``closes_at`` passed); a room made on another worker appears within
the pacer's index refresh (2 s). Names are HTML-escaped; each distinct list is rendered once.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import NamedTuple

from aiohttp import web

from guichet import openapi
from guichet.room import page
from guichet.room.service import Rooms, Runtime
from guichet.state import ROOMS
from guichet.wire import rfc3339

VENDOR = "vendor/swagger-ui"
_ROOMS_MARKER = b"<!-- rooms -->"  # in landing.html, replaced by the list of rooms
DOCS_CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",  # Swagger UI's style attributes
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
_LANDING_HEADERS = {
    **page._SECURITY_HEADERS,
    "Content-Security-Policy": page.CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
_DOCS_HEADERS = {**_LANDING_HEADERS, "Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY}


@dataclass(frozen=True)
class Pages:
    landing: page.Asset
    docs: page.Asset
    docs_script: page.Asset
    swagger_script: page.Asset
    swagger_style: page.Asset


def _read(name: str) -> bytes:
    return resources.files("guichet").joinpath("static", name).read_bytes()


@cache
def pages() -> Pages:
    """The files, read once (at set-up) and kept in memory."""
    landing = _read("landing.html")
    if landing.count(_ROOMS_MARKER + b"\n") != 1:
        raise RuntimeError(f"landing.html must hold {_ROOMS_MARKER.decode()} once, on its line")
    return Pages(
        landing=page._asset(landing, "text/html"),
        docs=page._asset(_read("docs.html"), "text/html"),
        docs_script=page._asset(_read("docs.js"), "text/javascript"),
        swagger_script=page._asset(_read(f"{VENDOR}/swagger-ui-bundle.js"), "text/javascript"),
        swagger_style=page._asset(_read(f"{VENDOR}/swagger-ui.css"), "text/css"),
    )


class Listed(NamedTuple):
    """One room as the landing page shows it."""

    id: str
    name: str | None
    state: str  # "open", "paused", "sold out" or "opens"
    opens_at: str  # RFC 3339


def _listed(rt: Runtime) -> Listed | None:
    """``rt`` as listed on the landing page, or None when unlisted or closed."""
    spec, c = rt.spec, rt.counters
    now = rt.now()  # Redis time from the snapshot
    if not spec.listed or now >= spec.closes_at.timestamp():
        return None
    if c is not None and c.sold_out:
        state = "sold out"
    elif spec.paused:
        state = "paused"
    elif (c is not None and c.opened) or now >= spec.opens_at.timestamp():
        state = "open"
    else:
        state = "opens"
    return Listed(rt.id, spec.name, state, rfc3339(spec.opens_at.timestamp()))


def public_rooms(rooms: Rooms) -> tuple[Listed, ...]:
    """The rooms this worker knows that are listed and not closed, in id order."""
    found = (_listed(rt) for rt in map(rooms.get, rooms.ids()) if rt is not None)
    return tuple(room for room in found if room is not None)


def _item(room: Listed) -> str:
    room_id = html.escape(room.id)
    label = html.escape(room.name) if room.name else room_id
    if room.state == "opens":
        opens = html.escape(room.opens_at)
        state = f'opens <time datetime="{opens}">{opens}</time>'
    else:
        state = room.state
    return (
        f'      <li><a href="/rooms/{room_id}" data-testid="room-link">{label}</a>'
        f" (<code>{room_id}</code>): {state}</li>\n"
    )


@lru_cache(maxsize=16)
def render(rooms: tuple[Listed, ...]) -> page.Asset:
    """The landing page listing ``rooms`` (the same list is rendered once)."""
    if rooms:
        items = "".join(_item(room) for room in rooms)
        listing = f'    <ul data-testid="rooms">\n{items}    </ul>\n'
    else:
        listing = '    <p data-testid="rooms">No room is open to the public right now.</p>\n'
    body = pages().landing.body.replace(_ROOMS_MARKER + b"\n", listing.encode())
    return page._asset(body, "text/html")


@openapi.endpoint("The landing page: links to the API documentation, the keys and the rooms "
                  "open to the public", content_type="text/html", tags=("page",))  # fmt: skip
async def landing(request: web.Request) -> web.Response:
    return page._send(request, render(public_rooms(request.app[ROOMS])), _LANDING_HEADERS)


@openapi.endpoint("The API documentation (Swagger UI on /openapi.json)",
                  content_type="text/html", tags=("page",))  # fmt: skip
async def docs(request: web.Request) -> web.Response:
    return page._send(request, pages().docs, _DOCS_HEADERS)


@openapi.endpoint("The documentation page's script", content_type="text/javascript",
                  tags=("page",))  # fmt: skip
async def docs_script(request: web.Request) -> web.Response:
    return page._send_static(request, pages().docs_script)


@openapi.endpoint("Swagger UI's script (bundled)", content_type="text/javascript",
                  tags=("page",))  # fmt: skip
async def swagger_script(request: web.Request) -> web.Response:
    return page._send_static(request, pages().swagger_script)


@openapi.endpoint("Swagger UI's style sheet (bundled)", content_type="text/css", tags=("page",))
async def swagger_style(request: web.Request) -> web.Response:
    return page._send_static(request, pages().swagger_style)


def setup_routes(app: web.Application) -> None:
    pages()  # read the files now, outside the event loop
    app.router.add_get("/", landing)
    app.router.add_get("/docs", docs)
    app.router.add_get("/static/docs.js", docs_script)
    app.router.add_get(f"/static/{VENDOR}/swagger-ui-bundle.js", swagger_script)
    app.router.add_get(f"/static/{VENDOR}/swagger-ui.css", swagger_style)
