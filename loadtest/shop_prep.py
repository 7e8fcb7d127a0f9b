"""Benchmark preparation for the shop targets: a sale with a huge catalogue, purchase windows
for the benchmark accounts, and held holds to confirm (written through the service's own
scripts, on the service's Redis: a standalone URL, or the config's Cluster seeds).

The catalogue has 3 sessions of 8 categories of 200,000 seats (the model's maxima): the hold
target rotates over one body per category, so one sale takes 1,600,000 packs before it could
sell out, whatever the number of rounds; the confirm pool's holds come from the same stock.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec

from guichet.app import SCRIPTS
from guichet.config import Settings
from guichet.shop import model
from guichet.shop.service import Shop
from guichet.store import sync
from guichet.store.client import connect
from loadtest.harness import Issuer
from loadtest.rush import open_windows

SALE = "bench"
SESSIONS = ("ATH-01", "SWM-01", "JUD-01")
CATEGORIES = tuple("ABCDEFGH")
SEATS = 200_000
HOLD_BODIES = [
    {"packs": [{"items": [{"session": s, "category": c, "quantity": 1} for s in SESSIONS]}]}
    for c in CATEGORIES
]


def catalogue() -> model.Catalogue:
    return msgspec.convert({"sessions": [
        {"id": s, "sport": "Bench", "venue": "Loopback", "starts_at": "2024-08-01T10:00:00Z",
         "categories": [{"id": c, "price_eur": 50, "seats": SEATS} for c in CATEGORIES]}
        for s in SESSIONS
    ]}, model.Catalogue)  # fmt: skip


def _where(settings: Settings, url: str | None) -> str | tuple[str, ...]:
    return url if url is not None else settings.redis.cluster_seeds


async def _load(url: str | None, settings: Settings) -> None:
    store = connect(settings.redis, url=url, scripts=SCRIPTS)
    try:
        shop = Shop(store)
        # Quotas raised: the benchmark repeats the same accounts many times a second.
        spec = model.SaleSpec(phase="packs", hold_ttl_s=3600, max_packs=100, max_tickets=1000,
                              pack_max_per_session=100)  # fmt: skip
        await shop.put(SALE, spec)
        code, _ = await shop.load(SALE, catalogue())
        assert code == "ok", code
    finally:
        await store.close()


async def _hold(url: str | None, settings: Settings, accounts: list[str], first: int) -> list[str]:
    store = connect(settings.redis, url=url, scripts=SCRIPTS)
    try:
        shop = Shop(store)
        requests = [msgspec.convert(b, model.HoldRequest) for b in HOLD_BODIES]
        ids: list[str] = []
        for i in range(0, len(accounts), 200):
            batch = accounts[i : i + 200]
            answers = await asyncio.gather(*(
                shop.hold(SALE, "packs", a, "prep", requests[(first + i + k) % len(requests)])
                for k, a in enumerate(batch)
            ))  # fmt: skip
            ids += [a.hold for a in answers]
        return ids
    finally:
        await store.close()


def prepare(url: str | None, settings: Settings, holders: list[str], tmp: Path) -> Path:
    """The sale, its catalogue and windows for ``holders``; returns the hold bodies' file (one
    JSON body a line, for ``wrk/shop.lua``)."""
    asyncio.run(_load(url, settings))
    open_windows(sync.connect(settings.redis, _where(settings, url)), SALE, holders, hours=24)
    body = tmp / "hold.json"
    body.write_text("".join(json.dumps(b) + "\n" for b in HOLD_BODIES))
    return body


class ConfirmPool:
    """Held packs to confirm, one ``<hold id> <token>`` line each in ``file``, grown on demand:
    each new line is a new account with a window and one fresh hold."""

    def __init__(self, url: str | None, settings: Settings, issuer: Issuer, file: Path) -> None:
        self.url, self.settings, self.issuer, self.file = url, settings, issuer, file
        self.size = 0
        file.write_text("")

    def grow(self, count: int) -> None:
        accounts = [f"confirm-{i}" for i in range(self.size, self.size + count)]
        client = sync.connect(self.settings.redis, _where(self.settings, self.url))
        try:
            open_windows(client, SALE, accounts, hours=24)
        finally:
            client.close()
        ids = asyncio.run(_hold(self.url, self.settings, accounts, self.size))
        with self.file.open("a") as out:
            for account, hold_id in zip(accounts, ids, strict=True):
                out.write(f"{hold_id} {self.issuer.account(account, ttl_s=3 * 3600)}\n")
        self.size += count
