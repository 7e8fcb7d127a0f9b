"""The landing page at ``/`` (links to the API documentation, the OpenAPI document and the
public keys; how room pages are addressed) and the API documentation page at ``/docs``:
Swagger UI rendering ``/openapi.json`` from assets bundled in the package
(``static/vendor/swagger-ui``, see its VERSION), never a CDN.

Swagger UI sets inline styles and writes HTML (rendered Markdown), so ``/docs`` runs under
its own policy: scripts and connections from this origin only, inline styles allowed, no
Trusted Types. The landing page has no script at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from aiohttp import web

from guichet import openapi
from guichet.room import page

VENDOR = "vendor/swagger-ui"
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
    return Pages(
        landing=page._asset(_read("landing.html"), "text/html"),
        docs=page._asset(_read("docs.html"), "text/html"),
        docs_script=page._asset(_read("docs.js"), "text/javascript"),
        swagger_script=page._asset(_read(f"{VENDOR}/swagger-ui-bundle.js"), "text/javascript"),
        swagger_style=page._asset(_read(f"{VENDOR}/swagger-ui.css"), "text/css"),
    )


@openapi.endpoint("The landing page: links to the API documentation and the keys",
                  content_type="text/html", tags=("page",))  # fmt: skip
async def landing(request: web.Request) -> web.Response:
    return page._send(request, pages().landing, _LANDING_HEADERS)


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
