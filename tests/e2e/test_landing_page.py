"""The landing page at ``/`` and the API documentation at ``/docs`` in a real headless
Chromium: the documentation renders the operations of ``/openapi.json`` from the bundled
Swagger UI with no request leaving the server and no console error, and every link of the
landing page (a room's page among them) answers 200."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page

from tests.conftest import Client, Tokens
from tests.e2e import chromium
from tests.e2e.chromium import browser as browser
from tests.e2e.room_helpers import Api
from tests.e2e.test_landing_rooms import known_everywhere

chromium.require()

pytestmark = pytest.mark.slow
WAIT_MS = 30_000
VENDOR = Path(__file__).resolve().parents[2] / "server/guichet/static/vendor/swagger-ui"


async def watched_page(browser: Browser, client: Client) -> tuple[Page, list[str], list[str]]:
    """A page recording console errors and every request for another origin."""
    origin = urlsplit(str(client.make_url(""))).netloc
    page = await browser.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if not r.url.startswith("data:") and urlsplit(r.url).netloc != origin
            else None
        ),
    )
    return page, errors, outside


async def test_docs_page_renders_the_operations_from_bundled_assets(
    browser: Browser, client: Client
) -> None:
    document = await (await client.get("/openapi.json")).json()
    operations = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert ("GET", "/docs") in operations
    assert ("GET", "/") in operations
    page, errors, outside = await watched_page(browser, client)
    response = await page.goto(f"{client.make_url('/docs')}")
    assert response is not None
    assert response.status == 200
    assert "script-src 'self'" in (response.headers.get("content-security-policy") or "")
    await page.wait_for_selector(".opblock", timeout=WAIT_MS)
    shown = await page.eval_on_selector_all(
        ".opblock-summary-path", "els => els.map(e => e.getAttribute('data-path'))"
    )
    assert set(shown) == {p for _, p in operations}
    assert await page.text_content(".info .title") is not None
    assert outside == []
    assert errors == []
    await page.close()


async def test_landing_page_links_resolve(browser: Browser, client: Client, tokens: Tokens) -> None:
    await Api(client, tokens).create("summer-tour", name="Summer <tour>")
    await known_everywhere(client, "summer-tour")
    page, errors, outside = await watched_page(browser, client)
    response = await page.goto(str(client.make_url("/")))
    assert response is not None
    assert response.status == 200
    hrefs = await page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    assert any(h.endswith("/docs") for h in hrefs)
    assert any(h.endswith("/openapi.json") for h in hrefs)
    assert "/rooms/" in (await page.text_content("main") or "")
    assert any(h.endswith("/rooms/summer-tour") for h in hrefs)
    assert await page.text_content("[data-testid=room-link]") == "Summer <tour>"
    for href in hrefs:
        answer = await client.get(urlsplit(href).path)
        assert answer.status == 200, href
    assert outside == []
    assert errors == []
    await page.close()


async def test_vendored_swagger_ui_is_version_5_with_its_licence(client: Client) -> None:
    assert (VENDOR / "VERSION").read_text().startswith("swagger-ui-dist 5.")
    assert "Apache License" in (VENDOR / "LICENSE").read_text()
    script = await client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert script.status == 200
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert await script.read() == (VENDOR / "swagger-ui-bundle.js").read_bytes()
