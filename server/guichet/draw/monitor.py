"""Draw and outbox gauges, refreshed from Redis by every worker every few seconds.

The run and the waves are ops batch jobs (``guichet draw …``) that Prometheus does not
scrape; they write their progress and counts to Redis, and the serving workers export them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec

from guichet import metrics
from guichet.draw import outbox
from guichet.draw.model import DrawSpec
from guichet.draw.service import Draws
from guichet.store.keys import DrawKeys, SaleKeys

log = logging.getLogger("guichet.draw")


def progress_ratio(raw: bytes | None) -> float:
    """``run_progress`` ("scan|store|done:<done>:<total>") as 0..1: scanning is the first half."""
    if raw is None:
        return 0.0
    phase, done, total = raw.decode().split(":")
    fraction = int(done) / max(int(total), 1)
    return {"scan": 0.5 * fraction, "store": 0.5 + 0.5 * fraction}.get(phase, 1.0)


async def refresh(draws: Draws) -> None:
    client = draws.store.client
    sales: set[str] = set()
    for draw in await draws.ids():
        raw: list[Any] = await client.hmget(DrawKeys(draw).cfg, ["run_progress", "ranked", "spec"])
        metrics.DRAW_PROGRESS.labels(draw).set(progress_ratio(raw[0]))
        metrics.DRAW_RANKED.labels(draw).set(int(raw[1] or 0))
        spec = None if raw[2] is None else msgspec.json.decode(raw[2], type=DrawSpec)
        if spec is None or spec.sale is None:
            continue
        sales.add(spec.sale)
        assigned, waves = await client.hmget(SaleKeys(spec.sale).waves(draw), ["assigned", "waves"])
        metrics.DRAW_WINDOWS.labels(draw).set(int(assigned or 0))
        metrics.DRAW_WAVES.labels(draw).set(int(waves or 0))
    now = time.time()
    for sale in sales:
        b = await outbox.backlog(client, sale)
        metrics.OUTBOX_BACKLOG.labels(sale, "undelivered").set(b.undelivered)
        metrics.OUTBOX_BACKLOG.labels(sale, "pending").set(b.pending)
        lag = 0.0 if b.oldest_due_us is None else max(0.0, now - b.oldest_due_us / 1e6)
        metrics.OUTBOX_LAG.labels(sale).set(lag)
