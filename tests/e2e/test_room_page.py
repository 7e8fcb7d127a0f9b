"""The public waiting-room page in a real headless Chromium (Debian's, driven by Playwright).

A room is created through the admin API, other accounts join ahead over HTTP, and a browser
opens the page with its account token in the URL fragment: it must show its place, follow
the line as the pacer calls numbers (SSE, or polling when the stream is unavailable), get
admitted and land on the target site with an admission token that verifies against the JWKS.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openapi_spec_validator import validate
from playwright.async_api import Browser, Page

from guichet.app import create_app
from guichet.config import Settings
from guichet.errors import PROBLEM_CONTENT_TYPE
from guichet.room import page as room_page
from tests.conftest import Client, Tokens
from tests.e2e import chromium
from tests.e2e.chromium import browser as browser

chromium.require()

pytestmark = pytest.mark.slow

AUDIENCE = "shop.example"
WAIT_MS = 30_000  # ceiling for any single browser-side wait (never a fixed sleep)
PROGRESS = "(p => [p.max, p.value])(document.getElementById('progress'))"


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def app(settings: Settings) -> web.Application:
    """The whole app, with the page's routes (added here only while app.py does not yet)."""
    application = create_app(settings)
    routes = {r.resource.canonical for r in application.router.routes() if r.resource}
    if "/rooms/{room}" not in routes:
        room_page.setup_routes(application)
    return application


@dataclass
class Target:
    """The protected site the room sends people to: records the tokens it receives."""

    server: TestServer
    tokens: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    site = web.Application()
    holder: list[Target] = []

    async def landing(request: web.Request) -> web.Response:
        holder[0].tokens.append(request.query.get("guichet_token", ""))
        return web.Response(
            text='<!doctype html><html lang="en"><title>Shop</title><link rel="icon" href="data:,">'
            '<h1 id="landed">Shop</h1>',
            content_type="text/html",
        )

    site.router.add_get("/landing", landing)
    server = TestServer(site, host="127.0.0.1")
    await server.start_server()
    holder.append(Target(server))
    yield holder[0]
    await server.close()


# --- helpers ---------------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_room(
    client: Client, tokens: Tokens, room: str, target: Target, **spec: Any
) -> str:
    """An open, paused FIFO room; returns an admin token that may change it."""
    admin = tokens.admin("rooms:write", "rooms:read")
    now = datetime.now(UTC)
    body = {
        "opens_at": (now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        "closes_at": (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
        "rate_per_s": 1,
        "max_active": 1000,
        "audience": AUDIENCE,
        "target_url": target.url("/landing?sale=demo"),
        "mode": "fifo",
        "paused": True,
        **spec,
    }
    resp = await client.put(f"/v1/admin/rooms/{room}", json=body, headers=bearer(admin))
    assert resp.status == 201, await resp.text()
    for _ in range(50):  # the first tick opens it (opens_at is in the past)
        resp = await client.get(f"/v1/admin/rooms/{room}", headers=bearer(admin))
        assert resp.status == 200, await resp.text()
        if (await resp.json())["phase"] == "open":
            return admin
        await asyncio.sleep(0.1)
    raise AssertionError(f"room {room} never opened")


async def join_ahead(client: Client, tokens: Tokens, room: str, count: int) -> None:
    for i in range(count):
        resp = await client.post(
            f"/v1/rooms/{room}/join", headers=bearer(tokens.account(f"ahead-{i}"))
        )
        assert resp.status == 201, await resp.text()
        assert (await resp.json())["number"] == i


async def patch_room(client: Client, admin: str, room: str, **patch: Any) -> None:
    resp = await client.patch(f"/v1/admin/rooms/{room}", json=patch, headers=bearer(admin))
    assert resp.status == 200, await resp.text()


@dataclass
class Watch:
    """What the page did that a test cannot catch with a DOM wait once it has navigated
    away: every text the live region received, in order, and the page's own errors."""

    announcements: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, predicate: Callable[[list[str]], bool], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate(self.announcements):
                self.changed.clear()
                await self.changed.wait()


# The observer is added by the test harness (DevTools), not by the page: the page's CSP
# forbids inline scripts, and this is exactly what it must not stop.
_OBSERVE_LIVE_REGION = """
document.addEventListener('DOMContentLoaded', () => {
  const region = document.getElementById('announce');
  if (!region) return;
  new MutationObserver(() => window.recordAnnouncement(region.textContent))
    .observe(region, {childList: true, characterData: true, subtree: true});
});
"""


async def open_page(browser: Browser, locale: str = "fr-FR") -> tuple[Page, Watch]:
    context = await browser.new_context(locale=locale, reduced_motion="reduce")
    watch = Watch()

    def record(text: str) -> None:
        if text:
            watch.announcements.append(text)
            watch.changed.set()

    await context.expose_function("recordAnnouncement", record)
    await context.add_init_script(_OBSERVE_LIVE_REGION)
    page = await context.new_page()
    page.on("pageerror", lambda exc: watch.errors.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: (
            watch.errors.append(f"console: {msg.text} {msg.location}")
            if msg.type == "error"
            else None
        ),
    )
    return page, watch


async def value(page: Page, selector: str) -> str:
    return await page.get_attribute(selector, "data-value") or ""


async def wait_value(page: Page, selector: str, expected: object) -> None:
    await page.wait_for_function(
        "([sel, want]) => document.querySelector(sel)?.dataset.value === want",
        arg=[selector, str(expected)],
        timeout=WAIT_MS,
    )


async def text(page: Page, selector: str) -> str:
    return (await page.text_content(selector) or "").strip()


async def tab_until(page: Page, element_id: str, limit: int = 12) -> list[str]:
    """Press Tab until ``element_id`` has the focus; the ids visited on the way."""
    visited: list[str] = []
    for _ in range(limit):
        await page.keyboard.press("Tab")
        visited.append(await page.evaluate("document.activeElement?.id ?? ''"))
        if visited[-1] == element_id:
            return visited
    raise AssertionError(f"#{element_id} not reached by Tab; focus went {visited}")


# --- tests -----------------------------------------------------------------------------------


async def test_page_and_assets_over_http(client: Client) -> None:
    resp = await client.get("/rooms/finale-100m")
    html = await resp.text()
    assert resp.status == 200
    assert resp.content_type == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"] == "no-cache"
    assert "Accept-Language" in resp.headers["Vary"]
    assert '<html lang="fr">' in html
    # Nothing inline: every script is a file, no handler or style attributes.
    assert re.findall(r"<script\b[^>]*>", html) == [
        f'<script src="/static/room.js?v={room_page.assets().script.version}" defer>'
    ]
    assert not re.search(r"\son[a-z]+\s*=|\sstyle\s*=|<style\b", html)

    for header, lang in (
        ("en-GB,en;q=0.9", "en"),
        ("de-DE,de;q=0.9", "fr"),
        ("fr;q=0.4, en;q=0.8", "en"),
        ("en;q=0, fr-CA", "fr"),
    ):
        page_html = await (
            await client.get("/rooms/demo", headers={"Accept-Language": header})
        ).text()
        assert f'<html lang="{lang}">' in page_html, header

    # Assets: the HTML pins their hash (cached for a year); other requests revalidate.
    for path, kind, asset in (
        ("/static/room.js", "text/javascript", room_page.assets().script),
        ("/static/room.css", "text/css", room_page.assets().style),
    ):
        assert f"{path}?v={asset.version}" in html
        resp = await client.get(f"{path}?v={asset.version}")
        assert resp.status == 200
        assert resp.content_type == kind
        assert resp.headers["Cache-Control"] == room_page.CACHE_VERSIONED
        assert await resp.read() == asset.body
        resp = await client.get(path)
        assert resp.headers["Cache-Control"] == room_page.CACHE_REVALIDATE
        resp = await client.get(path, headers={"If-None-Match": resp.headers["ETag"]})
        assert resp.status == 304

    for bad in ("Not_A_Room", "-leading-dash", "x" * 49, "caf%C3%A9"):
        resp = await client.get(f"/rooms/{bad}")
        assert resp.status == 404, bad
        assert resp.content_type == PROBLEM_CONTENT_TYPE

    spec = await (await client.get("/openapi.json")).json()
    validate(spec)
    assert spec["paths"]["/rooms/{room}"]["get"]["tags"] == ["page"]
    assert "text/html" in spec["paths"]["/rooms/{room}"]["get"]["responses"]["200"]["content"]
    assert (
        "text/javascript" in spec["paths"]["/static/room.js"]["get"]["responses"]["200"]["content"]
    )
    assert "text/css" in spec["paths"]["/static/room.css"]["get"]["responses"]["200"]["content"]


async def test_waiting_room_in_browser(
    client: Client, tokens: Tokens, browser: Browser, target: Target
) -> None:
    room = "finale-100m"
    ahead = 12
    admin = await create_room(client, tokens, room, target)
    await join_ahead(client, tokens, room, ahead)

    base = str(client.make_url(""))
    stray = await browser.new_page()
    response = await stray.goto(f"{base}/rooms/Not_A_Room")
    assert response is not None
    assert response.status == 404
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    await stray.close()

    page, watch = await open_page(browser)

    account_token = tokens.account("browser-person")
    await page.goto(f"{base}/rooms/{room}#token={account_token}")

    # In line behind the others, the room paused: place 13, 12 ahead, no ETA yet.
    await wait_value(page, "#position", ahead + 1)
    assert await value(page, "#ahead") == str(ahead)
    assert await value(page, "#number") == str(ahead)
    assert await page.get_attribute("#state", "data-state") == "waiting"
    assert await page.evaluate("document.documentElement.lang") == "fr"
    assert await text(page, "#eta") == "pas encore connue"
    assert await page.evaluate(PROGRESS) == [ahead, 0]
    assert await page.get_attribute("#announce", "role") == "status"
    assert await page.get_attribute("#announce", "aria-live") == "polite"
    await watch.until(lambda said: any(f": {ahead + 1}." in s for s in said), 10)
    # prefers-reduced-motion (set on the context): the "live" dot stands still.
    assert (
        await page.evaluate("getComputedStyle(document.querySelector('.pulse')).animationName")
        == "none"
    )
    # The token left the address bar for session storage.
    assert "token" not in page.url
    stored = await page.evaluate(f"sessionStorage.getItem('guichet:token:{room}')")
    assert stored == account_token

    # Keyboard: the language toggle comes first, the leave button is reachable by Tab, and
    # focus is visible.
    visited = await tab_until(page, "leave")
    assert visited[0] == "lang-toggle"
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")
    await page.keyboard.press("Enter")  # leave? asks first, focus on the question
    await page.wait_for_function("document.activeElement?.id === 'leave-question'")
    assert await page.is_visible("#leave-yes")
    await page.keyboard.press("Escape")  # no: back where we were, still in line
    await page.wait_for_function("document.activeElement?.id === 'leave'")
    assert await page.is_hidden("#leave-confirm")

    await page.focus("#lang-toggle")
    await page.keyboard.press("Enter")
    await page.wait_for_function("document.documentElement.lang === 'en'")
    assert (await text(page, "#state-text")).startswith("You are in line.")
    assert await text(page, "#eta") == "not known yet"
    assert await text(page, "#leave") == "Leave the queue"
    assert await text(page, "#lang-toggle") == "Français"
    assert await page.get_attribute("#lang-toggle", "lang") == "fr"
    await page.keyboard.press("Space")
    await page.wait_for_function("document.documentElement.lang === 'fr'")
    assert (await text(page, "#state-text")).startswith("Vous êtes dans la file.")
    assert await text(page, "#leave") == "Quitter la file"

    # Open the gate slowly: the place falls, the bar fills, the live region follows.
    await patch_room(client, admin, room, paused=False, rate_per_s=1)
    await page.wait_for_function(
        "want => Number(document.getElementById('position').dataset.value) < want"
        " && document.getElementById('progress').value > 0",
        arg=ahead + 1,
        timeout=WAIT_MS,
    )
    assert await page.get_attribute("#state", "data-state") == "waiting"
    assert re.fullmatch(r"(environ \d+ minutes?|moins d\u2019une minute)", await text(page, "#eta"))

    def announced_fewer(said: list[str]) -> bool:
        places = (re.search(r"place dans la file : (\d+)\.", s) for s in said)
        return any(m is not None and int(m.group(1)) <= ahead for m in places)

    await watch.until(announced_fewer, 20)  # a later, smaller place, before it is our turn

    # Our turn: the page is admitted and goes to the target with the admission token.
    await page.wait_for_url(re.compile(r"/landing\?"), timeout=WAIT_MS)
    await page.wait_for_selector("#landed")
    query = parse_qs(urlsplit(page.url).query)
    assert query["sale"] == ["demo"]
    [admission] = query["guichet_token"]
    assert target.tokens == [admission]

    jwks = jwt.PyJWKSet.from_dict(await (await client.get("/.well-known/jwks.json")).json())
    kid = jwt.get_unverified_header(admission)["kid"]
    claims = jwt.decode(admission, jwks[kid].key, algorithms=["EdDSA"], audience=AUDIENCE)
    assert claims["sub"] == "browser-person"
    assert claims["room"] == room
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(admission, jwks[kid].key, algorithms=["EdDSA"], audience="someone-else")

    # What the live region said: our place first, then fewer, never the same twice running,
    # and not on every tick (12 places went by).
    said = watch.announcements
    assert f": {ahead + 1}." in said[0]
    assert "votre tour" in said[-1].lower()
    assert all(a != b for a, b in itertools.pairwise(said))
    assert len(said) < ahead
    assert watch.errors == [], watch.errors


async def test_polling_fallback_and_leave(
    client: Client, tokens: Tokens, browser: Browser, target: Target
) -> None:
    room = "relais-4x100"
    await create_room(client, tokens, room, target)
    await join_ahead(client, tokens, room, 2)

    page, watch = await open_page(browser, locale="en-GB")
    await page.route(re.compile(r"/events\b"), lambda route: route.abort())
    base = str(client.make_url(""))
    async with page.expect_request(re.compile(r"/v1/rooms/relais-4x100/status$")) as polled:
        await page.goto(f"{base}/rooms/{room}#token={tokens.account('leaver')}")
        await wait_value(page, "#position", 3)
        assert await page.evaluate("document.documentElement.lang") == "en"
    assert (await polled.value).headers["x-queue-ticket"]  # the stream failed: polling
    assert (await polled.value).headers["x-queue-seen"]  # never shown a place behind the last

    # Leave with the keyboard only: Tab to the button, confirm with the second one.
    await tab_until(page, "leave")
    await page.keyboard.press("Enter")
    await page.wait_for_function("document.activeElement?.id === 'leave-question'")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement?.id") == "leave-yes"
    async with page.expect_response(re.compile(r"/leave$")) as left:
        await page.keyboard.press("Enter")
    assert (await left.value).status == 200
    await page.wait_for_function("document.getElementById('state').dataset.state === 'left'")
    assert await text(page, "#state-text") == "You have left the queue."
    assert await page.is_hidden("#actions")
    await watch.until(lambda said: "You have left the queue." in said, 10)
    assert all("/events" in e for e in watch.errors), watch.errors  # only the blocked stream
