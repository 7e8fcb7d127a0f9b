"""Real headless Chromium for the browser tests: Debian's binary (never a downloaded build),
driven by Playwright. A test module calls :func:`require` at import and uses :func:`browser`
as its fixture (``from tests.e2e.chromium import browser``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require() -> None:
    """Skip the calling module without Chromium, except under CI=true (where it fails)."""
    if not CHROMIUM.exists() and os.environ.get("CI") != "true":
        pytest.skip(
            f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium); "
            "they always run when CI=true",
            allow_module_level=True,
        )


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()
