"""Benchmark preparation for the shop targets: a sale with a huge catalogue, purchase windows
for the benchmark accounts, and held holds to confirm (written through the service's own
scripts, on the service's Redis)."""

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
HOLD_BODY = {"packs": [{"items": [{"session": s, "category": "A", "quantity": 1}
                                  for s in SESSIONS]}]}  # fmt: skip


def catalogue(seats: int) -> model.Catalogue:
    return msgspec.convert({"sessions": [
        {"id": s, "sport": "Bench", "venue": "Loopback", "starts_at": "2024-08-01T10:00:00Z",
         "categories": [{"id": "A", "price_eur": 50, "seats": seats}]}
        for s in SESSIONS
    ]}, model.Catalogue)  # fmt: skip


async def _prepare(url: str, settings: Settings, confirmers: list[str]) -> list[str]:
    store = connect(settings.redis, url=url, scripts=SCRIPTS)
    try:
        shop = Shop(store)
        # Quotas raised: the benchmark repeats the same accounts many times a second.
        spec = model.SaleSpec(phase="packs", hold_ttl_s=3600, max_packs=100, max_tickets=1000,
                              pack_max_per_session=100)  # fmt: skip
        await shop.put(SALE, spec)
        code, _ = await shop.load(SALE, catalogue(200_000))
        assert code == "ok", code
        request = msgspec.convert(HOLD_BODY, model.HoldRequest)
        ids: list[str] = []
        for i in range(0, len(confirmers), 200):
            batch = confirmers[i : i + 200]
            answers = await asyncio.gather(
                *(shop.hold(SALE, "packs", a, "prep", request) for a in batch)
            )
            ids += [a.hold for a in answers]
        return ids
    finally:
        await store.close()


def prepare(url: str, settings: Settings, issuer: Issuer, holders: list[str], tmp: Path,
            confirms: int) -> tuple[Path, Path]:  # fmt: skip
    """(hold body file, confirm lines file "<hold id> <token>")."""
    confirmers = [f"confirm-{i}" for i in range(confirms)]
    open_windows(sync.connect(settings.redis, url), SALE, holders + confirmers, hours=24)
    ids = asyncio.run(_prepare(url, settings, confirmers))
    body = tmp / "hold.json"
    body.write_text(json.dumps(HOLD_BODY))
    lines = tmp / "confirms.txt"
    with lines.open("w") as out:
        for account, hold_id in zip(confirmers, ids, strict=True):
            out.write(f"{hold_id} {issuer.account(account, ttl_s=3 * 3600)}\n")
    return body, lines
