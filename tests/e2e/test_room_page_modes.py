"""The waiting-room page says which queueing mode is on, in a real headless Chromium: the
random draw (how many are in it, no place in line) and the maintenance text of reject."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from tests.conftest import Client, Tokens
from tests.e2e import chromium
from tests.e2e.chromium import browser as browser
from tests.e2e.test_room_page import (
    WAIT_MS,
    Target,
    create_room,
    join_ahead,
    open_page,
    text,
)
from tests.e2e.test_room_page import app as app
from tests.e2e.test_room_page import target as target

chromium.require()

pytestmark = pytest.mark.slow


async def test_the_page_says_it_is_a_random_draw(
    client: Client, tokens: Tokens, browser: Browser, target: Target
) -> None:
    room = "tirage"
    await create_room(client, tokens, room, target, mode="random")
    await join_ahead(client, tokens, room, 5)
    page, watch = await open_page(browser)
    base = str(client.make_url(""))
    await page.goto(f"{base}/rooms/{room}#token={tokens.account('drawn')}")
    await page.wait_for_selector("#mode:not([hidden])", timeout=WAIT_MS)
    said = await text(page, "#mode")
    assert said.startswith("Vous participez à un tirage au sort : 6 personnes, "), said
    assert "admises par minute" in said
    assert await page.get_attribute("#state", "data-state") == "waiting"
    assert await page.is_hidden("#figures")  # no place in line in a draw
    await page.click("#lang-toggle")
    await page.wait_for_function(
        "document.getElementById('mode').textContent.startsWith('You are in a random draw: 6 "
        "people, ')",
        timeout=WAIT_MS,
    )
    assert "admitted per minute" in await text(page, "#mode")
    assert watch.errors == []


async def test_the_page_shows_the_maintenance_text_of_reject(
    client: Client, tokens: Tokens, browser: Browser, target: Target
) -> None:
    room = "maintenance"
    await create_room(client, tokens, room, target, mode="reject")
    page, watch = await open_page(browser, locale="en-GB")
    base = str(client.make_url(""))
    await page.goto(f"{base}/rooms/{room}#token={tokens.account('turned-away')}")
    await page.wait_for_function(
        "document.getElementById('state').dataset.state === 'rejecting'", timeout=WAIT_MS
    )
    assert await text(page, "#state-text") == (
        "The room is not letting anyone in right now. Trying again shortly…"
    )
    assert await page.is_hidden("#actions")  # no place to leave
    assert [e for e in watch.errors if "409" not in e] == []  # the refused join is logged
