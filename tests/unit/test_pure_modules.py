"""The pure modules (wire types, models, configuration) load no web framework and no Redis
client: they can be used, and property-tested, without either."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE = [
    "guichet.wire",
    "guichet.errors",
    "guichet.config",
    "guichet.refusals",
    "guichet.room.model",
    "guichet.room.lottery",
    "guichet.draw.model",
    "guichet.shop.model",
    "guichet.eticket.model",
    "guichet.programme.people",
    "guichet.programme.model",
    "guichet.programme.identity",
    "guichet.programme.pool",
    "guichet.programme.demo_plan",
    "guichet.rowfiles",
    "guichet.shop.catalogue",
]


@pytest.mark.parametrize("module", PURE)
def test_a_pure_module_loads_neither_aiohttp_nor_redis(module: str) -> None:
    probe = (
        f"import sys, {module}; print(sorted(m for m in ('aiohttp', 'redis') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", (module, done.stdout, done.stderr)
