"""The programme's gauges come from the counts in Redis (every worker exports the same)."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, generate_latest

from guichet.programme import model, monitor
from guichet.store.client import Store
from guichet.store.keys import PROGRAMMES_INDEX, ProgrammeKeys
from tests.conftest import metric_value


async def test_gauges_follow_the_invariant_terms_and_the_programme_counters(store: Store) -> None:
    k = ProgrammeKeys("olympic")
    c = store.client
    await c.hset(k.loaded, mapping={"ATH-01:D": 100, "SWM-01:D": 50})
    await c.hset(k.pool, mapping={"ATH-01:D": 60, "SWM-01:D": 20})
    await c.hset(k.alloc("youth-olympic"), mapping={"ATH-01:D": 25, "SWM-01:D": 5})
    await c.hset(k.assigned, mapping={"ATH-01:D": 10, "SWM-01:D": 25})
    await c.hset(k.used, mapping={"ATH-01:D": 5})
    for act, n in (("allocated", 70), ("assigned", 40), ("withdrawn", 3), ("consents_missing", 2)):
        await c.hset(k.stats("youth-olympic"), act, n)
    await c.hset(k.programmes, "youth-olympic", b'{"reclaim_on":"2024-05-01","id":"youth-olympic"}')
    await c.hset(PROGRAMMES_INDEX, "youth-olympic", "olympic")
    ticket = "youth-olympic.l1.1"
    notice: dict[Any, Any] = {
        "kind": "ticket", "programme": "youth-olympic", "ticket": ticket,
        "link": f"/v1/programmes/youth-olympic/tickets/{ticket}#c",
    }  # fmt: skip
    await c.xadd(k.outbox, notice, id="1000-0")  # written at t = 1 s: overdue for long
    await monitor.refresh(store)
    text = generate_latest(REGISTRY).decode()
    terms = {t: metric_value(text, "guichet_programme_invariant_tickets", games="olympic", term=t)
             for t in ("loaded", "pool", "allocated", "assigned", "used")}  # fmt: skip
    assert terms == {"loaded": 150, "pool": 80, "allocated": 30, "assigned": 35, "used": 5}
    assert terms["loaded"] == sum(v for t, v in terms.items() if t != "loaded")
    assert (
        metric_value(text, "guichet_programme_unassigned_tickets", programme="youth-olympic") == 30
    )
    acts = {a: metric_value(text, "guichet_programme_acts", programme="youth-olympic", act=a)
            for a in ("allocated", "assigned", "withdrawn", "reclaimed")}  # fmt: skip
    assert acts == {"allocated": 70, "assigned": 40, "withdrawn": 3, "reclaimed": 0}
    assert metric_value(text, "guichet_programme_consents_missing", programme="youth-olympic") == 2
    reclaim = metric_value(text, "guichet_programme_reclaim_timestamp_seconds",
                           programme="youth-olympic")  # fmt: skip
    assert reclaim == model.reclaim_at(model.RECLAIM_ON["olympic"]).timestamp()
    outbox = {"sale": "programme:olympic"}
    assert metric_value(text, "guichet_outbox_backlog", state="undelivered", **outbox) == 1
    assert metric_value(text, "guichet_outbox_lag_seconds", **outbox) > 365 * 86400
