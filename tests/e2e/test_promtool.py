"""Prometheus's own checker on what Guichet exposes and on its alert rules: ``promtool check
metrics`` on a live ``guichet serve --workers 2`` that has served rooms, a draw and a sale, and
``promtool check rules`` / ``promtool test rules`` on deploy/prometheus (Debian's
``prometheus`` package ships promtool; ``.ci/run`` installs it, and in CI a missing promtool
fails instead of skipping)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from aiohttp.test_utils import TestClient

from guichet.config import Settings
from guichet.store.client import Store
from tests.conftest import Client, Tokens, metric_value
from tests.e2e.room_helpers import eventually
from tests.e2e.test_shop_http import SALE, catalogue, give_window, pack, post_hold
from tests.served import ProcessServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is not None:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail("promtool is missing in CI: apt-get install -y prometheus (.ci/run does)")
    pytest.skip("promtool not installed (apt-get install prometheus)")


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], input=stdin.decode(), capture_output=True, text=True, timeout=60
    )


def test_alert_rules_pass_promtool_check_rules() -> None:
    done = run("check", "rules", str(RULES / "alerts.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_fires_and_stays_quiet_in_the_promtool_unit_tests() -> None:
    done = run("test", "rules", str(RULES / "alerts_test.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def exercise(client: Client, tokens: Tokens, store: Store) -> None:
    """Rooms, a draw, a sale and some refusals, so that most metrics have samples."""
    now = datetime.now(UTC).replace(microsecond=0)
    admin = {"Authorization": f"Bearer {tokens.admin('rooms:write', 'draws:write', 'sales:write')}"}
    room = {"opens_at": iso(now - timedelta(hours=1)), "closes_at": iso(now + timedelta(hours=2)),
            "rate_per_s": 1000.0, "max_active": 100, "audience": "shop",
            "target_url": "https://shop.example/", "sale": SALE}  # fmt: skip
    assert (await client.put("/v1/admin/rooms/r1", json=room, headers=admin)).status == 201
    fan = {"Authorization": f"Bearer {tokens.account('fan')}"}
    joined = await client.post("/v1/rooms/r1/join", headers=fan)
    assert joined.status == 201, await joined.text()
    ticket = {"X-Queue-Ticket": (await joined.json())["ticket"], **fan}

    async def called() -> bool | None:
        status = await (await client.get("/v1/rooms/r1/status", headers=ticket)).json()
        return True if status["state"] == "ready" else None

    await eventually(called, "number called", within_s=30)
    assert (await client.post("/v1/rooms/r1/admit", headers=ticket)).status == 200
    assert (await client.get("/v1/rooms/r1/status", headers={"X-Queue-Ticket": "x"})).status == 401

    draw = {"registration_opens_at": iso(now - timedelta(minutes=1)),
            "registration_closes_at": iso(now + timedelta(hours=1)),
            "strata": ["general"]}  # fmt: skip
    assert (await client.put("/v1/admin/draws/d1", json=draw, headers=admin)).status == 201
    consent = {"accept_rules": True, "accept_data_processing": True}
    assert (await client.post("/v1/draws/d1/entries", json=consent, headers=fan)).status == 201
    assert (await client.post("/v1/draws/d1/entries", json={}, headers=fan)).status == 422

    assert (await client.put(f"/v1/admin/sales/{SALE}", json={}, headers=admin)).status == 201
    loaded = await client.put(f"/v1/admin/sales/{SALE}/catalogue", json=catalogue(), headers=admin)
    assert loaded.status == 200, await loaded.text()
    await give_window(store, "fan")
    status, held = await post_hold(client, tokens, "fan", {"packs": [pack(0, 1, 2)]})
    assert status == 201, held
    confirm = f"/v1/sales/{SALE}/holds/{held['id']}/confirm"
    bought = await client.post(confirm, json={"payment_reference": "P1"}, headers=fan)
    assert bought.status == 200, await bought.text()
    status, _ = await post_hold(client, tokens, "late", {"packs": [pack(3, 4, 5)]})
    assert status == 403  # no window
    assert (await client.get(f"/v1/sales/{SALE}/availability")).status == 200
    assert (await client.get("/v1/me")).status == 401
    assert (await client.get("/nowhere")).status == 404


async def test_a_live_servers_metrics_pass_promtool_check_metrics(
    settings: Settings, tmp_path: Path, tokens: Tokens, store: Store
) -> None:
    promtool()
    server = ProcessServer(settings, tmp_path / "serve", workers=2)
    async with cast(Client, TestClient(server)) as client:
        await exercise(client, tokens, store)

        async def settled() -> bytes | None:
            # every worker's counts flushed, the gauges refreshed
            exposition = await (await client.get("/metrics")).read()
            text = exposition.decode()
            if (
                metric_value(text, "guichet_http_requests_total", route="unmatched") == 0
                or metric_value(text, "guichet_shop_seats_left", sale=SALE) == 0
                or metric_value(text, "guichet_ready") == 0
            ):
                return None
            return exposition

        exposition = await eventually(settled, "settled metrics", within_s=30)
        text = exposition.decode()
    for name in ("guichet_room_serving_number", "guichet_room_admitted_total",
                 "guichet_draw_entries_total", "guichet_shop_holds_total",
                 "guichet_shop_confirms_total", "guichet_ready"):  # fmt: skip
        assert f"\n{name}{{" in text or f"\n{name} " in text, name
    assert "guichet_room_serving_counter" not in text
    done = await asyncio.to_thread(run, "check", "metrics", stdin=exposition)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "", done.stdout  # no lint remark at all
    assert done.stderr.strip() == "", done.stderr
