"""Preparation and check of the "window opening rush": a sale with the demo catalogue, open
purchase windows for the winners ``<prefix>-0 … <prefix>-(n-1)`` (as a wave writes them), and
the stock invariant afterwards."""

from __future__ import annotations

from typing import Any

import msgspec

from guichet import opscli
from guichet.config import Settings
from guichet.shop import demo
from guichet.shop.service import SCRIPTS, Shop
from guichet.shop.service import audit as audit_levels
from guichet.store.keys import SaleKeys
from guichet.units import US_PER_S
from loadtest.harness import Issuer, admin_put


def prepare(base_url: str, issuer: Issuer, settings: Settings, sale: str, prefix: str,
            winners: int) -> None:  # fmt: skip
    admin_put(base_url, issuer, f"sales/{sale}", {"phase": "packs"}, "sales:write")
    catalogue = msgspec.to_builtins(demo.shipped("olympic"))  # the sale's games (olympic)
    admin_put(base_url, issuer, f"sales/{sale}/catalogue", catalogue, "sales:write")
    open_windows(opscli.sync_client(settings), sale, [f"{prefix}-{i}" for i in range(winners)])


def open_windows(client: Any, sale: str, accounts: list[str], hours: int = 48) -> None:
    """Purchase windows open now for ``accounts``, written as a wave writes them (the key
    layout is the draw's contract with the shop), 1,000 at a time."""
    seconds, _ = client.time()
    start, end = (int(seconds) - 60) * US_PER_S, (int(seconds) + hours * 3600) * US_PER_S
    windows = SaleKeys(sale).windows("packs")
    for first in range(0, len(accounts), 1000):
        batch = accounts[first : first + 1000]
        client.hset(windows, mapping=dict.fromkeys(batch, f"{start}:{end}:loadtest:1"))


def audit(settings: Settings, sale: str) -> list[str]:
    """Breaches of available + held + sold = loaded after the run."""
    levels = opscli.with_store(settings, SCRIPTS, lambda s: Shop(s).levels(sale))
    return audit_levels(levels)
