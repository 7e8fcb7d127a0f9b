"""The singles phase end to end over HTTP (issue 13, item 5): after the packs phase, the sale
switches to singles and a second draw of its own gives windows; holds follow the singles caps
and the 30-ticket cap counts both phases; confirms record the singles waves.

Where the rules come from: the seed says the packs phase comes first, "au maximum de 30
billets (soit 10 packs) par compte", and "une vente à l'unité aura lieu au printemps,
également sur tirage au sort"; the singles caps (6 tickets per session, 4 for ceremonies and
high-demand sessions) are public Paris 2024 facts, not the seed's; that the 30 tickets count
both phases is our reading (the sale keeps one usage record per account)."""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from guichet import cli
from guichet.config import Settings
from guichet.store import sync
from guichet.store.keys import DrawKeys
from tests.conftest import Client, Tokens, settings_file

SALE = "paris"
CONSENT = {"accept_rules": True, "accept_data_processing": True}
SPORT = [f"ATH-{i:02d}" for i in range(1, 7)]  # ATH-06 is kept out of the packs


def catalogue() -> dict[str, Any]:
    start = datetime(2024, 7, 27, 10, tzinfo=UTC)

    def session(sid: str, day: int, **kind: bool | str) -> dict[str, Any]:
        return {"id": sid, "sport": "Athletics", "venue": "Stade de France",
                "starts_at": (start + timedelta(days=day)).isoformat(), **kind,
                "categories": [{"id": "B", "price_eur": 100, "seats": 50}]}  # fmt: skip

    return {"sessions": [session(s, i) for i, s in enumerate(SPORT)]
            + [session("CER-OPEN", 0, kind="ceremony"),
               session("ATH-100M", 9, high_demand=True)]}  # fmt: skip


def items(session: str, quantity: int) -> dict[str, Any]:
    return {"items": [{"session": session, "category": "B", "quantity": quantity}]}


class Ops:
    """The admin API and the ops commands, as the operators drive a phase."""

    def __init__(self, client: Client, tokens: Tokens, settings: Settings, tmp: Path) -> None:
        self.client, self.tokens, self.settings = client, tokens, settings
        self.config = str(settings_file(settings, tmp / "ops.toml"))

    async def cli(self, *args: str) -> int:
        return await asyncio.to_thread(cli.main, ["--config", self.config, *args])

    async def put(self, url: str, body: dict[str, Any], scope: str) -> None:
        headers = {"Authorization": f"Bearer {self.tokens.admin(scope)}"}
        resp = await self.client.put(url, json=body, headers=headers)
        assert resp.status in (200, 201), await resp.text()

    async def draw(self, draw: str, phase: str, entrants: list[str]) -> None:
        """A draw for the sale's ``phase``: registration over HTTP, commitment, close, run,
        and one wave whose windows are open now (released with short notice)."""
        now = datetime.now(UTC)
        await self.put(f"/v1/admin/draws/{draw}", {
            "registration_opens_at": (now - timedelta(minutes=1)).isoformat(),
            "registration_closes_at": (now + timedelta(hours=1)).isoformat(),
            "sale": SALE, "phase": phase}, "draws:write")  # fmt: skip
        for account in entrants:
            resp = await self.client.post(
                f"/v1/draws/{draw}/entries", json=CONSENT,
                headers={"Authorization": f"Bearer {self.tokens.account(account)}"},
            )  # fmt: skip
            assert resp.status == 201, await resp.text()
        assert await self.cli("draw", "commit", draw) == 0
        redis = await asyncio.to_thread(sync.connect, self.settings.redis,
                                        sync.target(self.settings.redis))  # fmt: skip
        seconds, micros = await asyncio.to_thread(redis.time)
        await asyncio.to_thread(redis.hset, DrawKeys(draw).cfg, "closes_us",
                                seconds * 1_000_000 + micros)  # the close, now  # fmt: skip
        assert await self.cli("draw", "run", draw, "--quiet") == 0
        start = (now - timedelta(minutes=1)).isoformat()
        assert await self.cli("draw", "release-wave", draw, "--count", str(len(entrants)),
                              "--start", start, "--allow-short-notice", "--quiet") == 0  # fmt: skip


async def hold(
    client: Client, tokens: Tokens, account: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {tokens.account(account)}",
               "Idempotency-Key": secrets.token_hex(8)}  # fmt: skip
    resp = await client.post(f"/v1/sales/{SALE}/holds", json=body, headers=headers)
    return resp.status, await resp.json()


async def confirm(client: Client, tokens: Tokens, account: str, hold_id: str) -> None:
    resp = await client.post(
        f"/v1/sales/{SALE}/holds/{hold_id}/confirm", json={"payment_reference": "PAY-" + hold_id},
        headers={"Authorization": f"Bearer {tokens.account(account)}"},
    )  # fmt: skip
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["state"] == "confirmed"


def refused(status: int, problem: dict[str, Any], expected: int, rule: str) -> None:
    assert status == expected, problem
    assert problem["context"]["rule"] == rule, problem


async def test_the_singles_phase_from_registration_to_confirm(
    client: Client, tokens: Tokens, settings: Settings, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    ops = Ops(client, tokens, settings, tmp_path)
    await ops.put(f"/v1/admin/sales/{SALE}", {"phase": "packs"}, "sales:write")
    await ops.put(f"/v1/admin/sales/{SALE}/catalogue", catalogue(), "sales:write")

    # Packs phase (winter): "fan" buys 8 packs of 3 sport sessions, 24 tickets.
    await ops.draw("packs-2024", "packs", ["fan", "packs-only"])
    packs = [{"items": [{"session": SPORT[(i + j) % 5], "category": "B", "quantity": 1}
                        for j in range(3)]} for i in range(8)]  # fmt: skip
    status, held = await hold(client, tokens, "fan", {"packs": packs})
    assert status == 201, held
    await confirm(client, tokens, "fan", held["id"])

    # Singles phase (spring): the sale switches, its own draw gives its own windows.
    await ops.put(f"/v1/admin/sales/{SALE}", {"phase": "singles"}, "sales:write")
    await ops.draw("singles-2024", "singles", ["fan", "newcomer"])
    entry = await (await client.get(
        "/v1/draws/singles-2024/entries/me",
        headers={"Authorization": f"Bearer {tokens.account('newcomer')}"})).json()  # fmt: skip
    assert (entry["status"], entry["window"]["wave"]) == ("window_assigned", 1)
    status, problem = await hold(client, tokens, "newcomer", {"packs": packs[:1]})
    assert status == 422, problem  # packs are over
    assert [e["field"] for e in problem["errors"]] == ["packs"]
    status, problem = await hold(client, tokens, "packs-only", items("ATH-06", 1))
    assert (status, problem["type"].rsplit("/", 1)[-1]) == (403, "window-closed")

    # The singles caps: 6 per session, 4 for ceremonies and high-demand sessions.
    for session, too_many, allowed in (("ATH-06", 7, 6), ("CER-OPEN", 5, 4), ("ATH-100M", 5, 4)):
        status, problem = await hold(client, tokens, "newcomer", items(session, too_many))
        refused(status, problem, 409, "max_per_session")
        assert problem["context"]["limit"] == allowed
        status, held = await hold(client, tokens, "newcomer", items(session, allowed))
        assert status == 201, held
        await confirm(client, tokens, "newcomer", held["id"])
    status, problem = await hold(client, tokens, "newcomer", items("ATH-06", 1))
    refused(status, problem, 409, "max_per_session")  # bought ones count too

    # The 30-ticket cap counts both phases: 24 from the packs leave 6.
    status, held = await hold(client, tokens, "fan", items("ATH-100M", 4))
    assert status == 201, held
    status, problem = await hold(client, tokens, "fan", items("ATH-06", 3))
    refused(status, problem, 409, "max_tickets")
    assert (problem["context"]["limit"], problem["context"]["have"]) == (30, 28)
    await confirm(client, tokens, "fan", held["id"])
    status, last = await hold(client, tokens, "fan", items("ATH-06", 2))
    assert status == 201, last
    await confirm(client, tokens, "fan", last["id"])
    me = await (await client.get(
        f"/v1/sales/{SALE}/me",
        headers={"Authorization": f"Bearer {tokens.account('fan')}"})).json()  # fmt: skip
    assert (me["phase"], me["tickets_bought"], me["tickets_left"]) == ("singles", 30, 0)

    # Each phase's wave learned from its own buyers (item 6).
    capsys.readouterr()
    assert await ops.cli("draw", "waves", "singles-2024") == 0
    (wave,) = json.loads(capsys.readouterr().out)["waves"]
    assert (wave["windows"], wave["buyers"], wave["tickets"]) == (2, 2, 14 + 6)
    assert await ops.cli("draw", "waves", "packs-2024") == 0
    (wave,) = json.loads(capsys.readouterr().out)["waves"]
    assert (wave["windows"], wave["buyers"], wave["tickets"]) == (2, 1, 24)
