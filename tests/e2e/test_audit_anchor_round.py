"""The anchors' background round: a worker signs an anchor once a chain moves, publishes it,
and reports the anchor's age."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from guichet.audit import notes
from guichet.audit.act import Act
from guichet.config import Settings
from guichet.store.client import Store
from tests.conftest import Backend, Client, make_settings, metric_value, metrics_when


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(tmp_path, backend.redis_section, audit={"anchor_interval_s": 0.1})


async def test_the_round_signs_once_a_chain_moved(client: Client, store: Store) -> None:
    assert (await client.get("/v1/audit/anchor")).status == 404
    act = Act(actor="cli:ops", action="room.rotate-key", object="room:r1", digest="00" * 32)
    await notes.note(store.scripts, act, outcome="rotated")
    async with asyncio.timeout(15):
        while True:  # the next round (every 0.1 s here) signs it
            response = await client.get("/v1/audit/anchor")
            if response.status == 200:
                break
            await asyncio.sleep(0.05)
    anchor = await response.json()
    assert anchor["seq"] == 1
    text = await metrics_when(
        client, lambda t: 0 <= metric_value(t, "guichet_audit_anchor_age_seconds") < 60
    )
    assert metric_value(text, "guichet_audit_anchors_total", result="appended") >= 1
