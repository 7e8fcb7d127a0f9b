"""The waiting-room page in a real headless Chromium behind the proof-of-work door: it is
refused at join with a challenge, solves it with Web Crypto (showing its progress), joins with
the proof and gets in. The browser's solve time and hash rate are printed (docs cite them)."""

from __future__ import annotations

import re
import time

import pytest
from playwright.async_api import Browser

from tests.conftest import Client, Tokens, metric_value
from tests.e2e import chromium
from tests.e2e.chromium import browser as browser
from tests.e2e.test_room_page import (
    WAIT_MS,
    Target,
    Watch,
    create_room,
    open_page,
    patch_room,
)
from tests.e2e.test_room_page import app as app
from tests.e2e.test_room_page import target as target

chromium.require()

pytestmark = pytest.mark.slow

BITS = 14


#: The page's own method (room.js solveChallenge): batches of 256 digests, awaited together.
def page_errors(watch: Watch) -> list[str]:
    """The page's errors but Chromium's own note of the join's expected 403 (the door)."""
    return [e for e in watch.errors if not ("status of 403" in e and "/join'" in e)]


_BENCH = """async (count) => {
  const encoder = new TextEncoder();
  const started = performance.now();
  for (let n = 0; n < count; n += 256) {
    const batch = [];
    for (let i = 0; i < 256; i += 1) {
      batch.push(crypto.subtle.digest('SHA-256', encoder.encode('bench-token:' + (n + i))));
    }
    await Promise.all(batch);
  }
  return performance.now() - started;
}"""


async def test_the_page_solves_the_challenge_and_gets_in(
    client: Client, tokens: Tokens, browser: Browser, target: Target
) -> None:
    room = "door-14"
    admin = await create_room(client, tokens, room, target, challenge_bits=BITS, rate_per_s=50)
    before = await (await client.get("/metrics")).text()
    page, watch = await open_page(browser, locale="en-GB")
    base = str(client.make_url(""))
    await page.goto(f"{base}/rooms/{room}#token={tokens.account('pow-person')}")

    # In line (the room is paused): the page got past the door.
    await page.wait_for_function(
        "() => document.querySelector('#state')?.dataset.state === 'waiting'", timeout=WAIT_MS
    )
    tries = int(await page.get_attribute("#challenge", "data-tries") or 0)
    solve_ms = float(await page.get_attribute("#challenge", "data-solve-ms") or 0)
    assert tries >= 1
    assert await page.is_hidden("#challenge")
    assert page_errors(watch) == [], watch.errors

    bench_count = 1 << 16
    bench_ms = float(await page.evaluate(_BENCH, bench_count))
    rate = bench_count / (bench_ms / 1000)
    print(  # the figures docs/architecture.md cites
        f"\nchromium proof of work: bits={BITS} tries={tries} solve={solve_ms:.0f} ms "
        f"page rate={tries / max(solve_ms, 1) * 1000:,.0f}/s; "
        f"bench {bench_count} digests in {bench_ms:.0f} ms = {rate:,.0f} SHA-256/s"
    )

    after = await (await client.get("/metrics")).text()
    name = "guichet_room_challenges_total"
    assert metric_value(after, name, room=room, outcome="solved") == 1 + metric_value(
        before, name, room=room, outcome="solved"
    )
    observed = "guichet_room_challenge_solve_seconds_sum"
    assert metric_value(after, observed, room=room) - metric_value(
        before, observed, room=room
    ) == pytest.approx(solve_ms / 1000, abs=0.002)

    await patch_room(client, admin, room, paused=False)
    await page.wait_for_url(re.compile(r"/landing\?"), timeout=WAIT_MS)
    assert len(target.tokens) == 1
    assert page_errors(watch) == [], watch.errors


async def test_the_page_shows_its_progress_while_solving(
    client: Client, tokens: Tokens, browser: Browser, target: Target
) -> None:
    room = "door-22"
    await create_room(client, tokens, room, target, challenge_bits=22)
    page, watch = await open_page(browser, locale="fr-FR")
    base = str(client.make_url(""))
    started = time.monotonic()
    await page.goto(f"{base}/rooms/{room}#token={tokens.account('slow-person')}")
    # About 4 million tries expected: the page shows a growing share, in French, below 100 %.
    await page.wait_for_function(
        "() => Number(document.querySelector('#challenge')?.dataset.value) > 0", timeout=WAIT_MS
    )
    text = await page.text_content("#challenge") or ""
    assert text.startswith("Vérification de votre navigateur…"), text
    assert "%" in text
    share = float(await page.get_attribute("#challenge", "data-value") or 0)
    assert 0 < share < 1
    assert await page.get_attribute("#challenge", "role") == "status"
    assert await page.get_attribute("#state", "data-state") == "loading"
    assert time.monotonic() - started < WAIT_MS / 1000
    assert page_errors(watch) == [], watch.errors
