"""Preparation and check of the "window opening rush": a sale with the demo catalogue, open
purchase windows for the winners ``<prefix>-0 … <prefix>-(n-1)`` (as a wave writes them), and
the stock invariant afterwards."""

from __future__ import annotations

import json
from importlib import resources

from guichet import opscli
from guichet.config import Settings
from guichet.shop.service import SCRIPTS, Shop
from guichet.shop.service import audit as audit_levels
from guichet.store.keys import SaleKeys
from loadtest.harness import Issuer, admin_put


def prepare(base_url: str, issuer: Issuer, settings: Settings, sale: str, prefix: str,
            winners: int) -> None:  # fmt: skip
    admin_put(base_url, issuer, f"sales/{sale}", {"phase": "packs"}, "sales:write")
    catalogue = resources.files("guichet.shop").joinpath("demo_catalogue.json").read_bytes()
    admin_put(base_url, issuer, f"sales/{sale}/catalogue", json.loads(catalogue), "sales:write")
    client = opscli.sync_client(settings)
    seconds, _ = client.time()
    start, end = (int(seconds) - 60) * 1_000_000, (int(seconds) + 2 * 86_400) * 1_000_000
    windows = SaleKeys(sale).windows("packs")
    for first in range(0, winners, 1000):
        accounts = range(first, min(winners, first + 1000))
        client.hset(windows, mapping={f"{prefix}-{i}": f"{start}:{end}:rush:1" for i in accounts})


def audit(settings: Settings, sale: str) -> list[str]:
    """Breaches of available + held + sold = loaded after the run."""
    levels = opscli.with_store(settings, SCRIPTS, lambda s: Shop(s).levels(sale))
    return audit_levels(levels)
