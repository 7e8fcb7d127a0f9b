"""The public waiting-room page: one HTML document, its script and its style sheet.

The three files ship in the package (``guichet/static``) and are read once, when the routes
are set up (outside the event loop), then served from memory. The page references its
assets with a content hash (``/static/room.js?v=…``): a request carrying the current hash
may be cached for a year, anything else is revalidated (ETag). The HTML is never cached
without revalidation, so a deployment reaches every waiting browser on its next load.

The page runs under a strict Content-Security-Policy: scripts and styles from this origin
only, nothing inline, no ``eval``, Trusted Types enforced, no framing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from aiohttp import web

from guichet import openapi
from guichet.room import model

LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
_MAX_ACCEPT_LANGUAGE = 512

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # data: for the empty favicon (no /favicon.ico request)
        "connect-src 'self'",
        "font-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    # The account token travels in the URL fragment (never sent), but the page's own URL
    # names the room: nothing leaks to the target site or anywhere else.
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_PAGE_HEADERS = {
    **_SECURITY_HEADERS,
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
    "Vary": "Accept-Language",
}
CACHE_VERSIONED = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str
    version: str


@dataclass(frozen=True)
class Assets:
    script: Asset
    style: Asset
    pages: dict[str, Asset]  # the HTML document by language


def _read(name: str) -> bytes:
    return resources.files("guichet").joinpath("static", name).read_bytes()


def _asset(body: bytes, content_type: str) -> Asset:
    digest = hashlib.sha256(body).hexdigest()
    return Asset(body=body, content_type=content_type, etag=f'"{digest[:24]}"', version=digest[:12])


@cache
def assets() -> Assets:
    """The files, read once (at set-up) and kept in memory."""
    script = _asset(_read("room.js"), "text/javascript")
    style = _asset(_read("room.css"), "text/css")
    html = _read("room.html")
    for old, new in (
        (b'src="/static/room.js"', f'src="/static/room.js?v={script.version}"'.encode()),
        (b'href="/static/room.css"', f'href="/static/room.css?v={style.version}"'.encode()),
    ):
        if html.count(old) != 1:
            raise RuntimeError(f"room.html must reference {old.decode()} exactly once")
        html = html.replace(old, new)
    marker = f'<html lang="{DEFAULT_LANGUAGE}">'.encode()
    if html.count(marker) != 1:
        raise RuntimeError(f"room.html must start with {marker.decode()}")
    pages = {
        lang: _asset(html.replace(marker, f'<html lang="{lang}">'.encode()), "text/html")
        for lang in LANGUAGES
    }
    return Assets(script=script, style=style, pages=pages)


def preferred_language(header: str | None) -> str:
    """``fr`` or ``en``, whichever the Accept-Language header ranks higher (default ``fr``)."""
    if not header:
        return DEFAULT_LANGUAGE
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for part in header[:_MAX_ACCEPT_LANGUAGE].split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().split("-")[0].lower()
        if primary not in LANGUAGES:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if 0 < q <= 1 and q > best_q:
            best, best_q = primary, q
    return best


def _not_modified(request: web.Request, etag: str) -> bool:
    header = request.headers.get("If-None-Match")
    if not header:
        return False
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def _send(request: web.Request, asset: Asset, headers: dict[str, str]) -> web.Response:
    headers = {**headers, "ETag": asset.etag}
    if _not_modified(request, asset.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=asset.body, content_type=asset.content_type, charset="utf-8", headers=headers
    )


def _send_static(request: web.Request, asset: Asset) -> web.Response:
    versioned = request.query.get("v") == asset.version
    cache_control = CACHE_VERSIONED if versioned else CACHE_REVALIDATE
    return _send(request, asset, {**_SECURITY_HEADERS, "Cache-Control": cache_control})


@openapi.endpoint(
    "The waiting-room page (open with #token=<account JWT> in the URL fragment)",
    content_type="text/html",
    errors=(404,),
    tags=("page",),
)
async def room_page(request: web.Request) -> web.Response:
    if not model.valid_room_id(request.match_info["room"]):
        raise web.HTTPNotFound()
    lang = preferred_language(request.headers.get("Accept-Language"))
    return _send(request, assets().pages[lang], _PAGE_HEADERS)


@openapi.endpoint("The waiting-room page's script", content_type="text/javascript", tags=("page",))
async def room_script(request: web.Request) -> web.Response:
    return _send_static(request, assets().script)


@openapi.endpoint("The waiting-room page's style sheet", content_type="text/css", tags=("page",))
async def room_style(request: web.Request) -> web.Response:
    return _send_static(request, assets().style)


def setup_routes(app: web.Application) -> None:
    assets()  # read the files now, outside the event loop
    app.router.add_get("/rooms/{room}", room_page)
    app.router.add_get("/static/room.js", room_script)
    app.router.add_get("/static/room.css", room_style)
