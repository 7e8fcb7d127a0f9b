"""Draw registration over HTTP: idempotent and race-free, period enforced, consent required."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from guichet.store.keys import DrawKeys
from tests.conftest import Tokens

CONSENT = {"accept_rules": True, "accept_data_processing": True}


def spec(opens_in_s: float = -60, closes_in_s: float = 3600, **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "registration_opens_at": (now + timedelta(seconds=opens_in_s)).isoformat(),
        "registration_closes_at": (now + timedelta(seconds=closes_in_s)).isoformat(),
        "strata": ["club", "general"],
        **extra,
    }


async def put_draw(client: TestClient, tokens: Tokens, body: dict[str, Any]) -> int:
    resp = await client.put(
        "/v1/admin/draws/d1",
        json=body,
        headers={"Authorization": f"Bearer {tokens.admin('draws:write')}"},
    )
    assert resp.status in (200, 201), await resp.text()
    return resp.status


async def test_100_concurrent_duplicate_registrations_make_one_entry(
    client: TestClient, tokens: Tokens
) -> None:
    assert await put_draw(client, tokens, spec()) == 201
    bearer = {"Authorization": f"Bearer {tokens.account('fan-1')}"}

    async def register() -> tuple[int, dict[str, Any]]:
        resp = await client.post("/v1/draws/d1/entries", json=CONSENT, headers=bearer)
        return resp.status, await resp.json()

    results = await asyncio.gather(*(register() for _ in range(100)))
    assert sorted(status for status, _ in results) == [200] * 99 + [201]
    assert len({(b["registered_at"], b["stratum"]) for _, b in results}) == 1
    assert results[0][1]["stratum"] == "general"  # the default stratum
    resp = await client.get("/v1/draws/d1")
    assert (await resp.json())["entries"] == {"general": 1}
    resp = await client.get("/v1/draws/d1/entries/me", headers=bearer)
    assert (await resp.json())["status"] == "registered"


async def test_outside_the_period_is_409_naming_it(client: TestClient, tokens: Tokens) -> None:
    bearer = {"Authorization": f"Bearer {tokens.account('early')}"}
    await put_draw(client, tokens, spec(opens_in_s=600))
    resp = await client.post("/v1/draws/d1/entries", json=CONSENT, headers=bearer)
    body = await resp.json()
    assert resp.status == 409
    assert body["type"].endswith("registration-not-open")
    assert "the period is [" in body["detail"]
    await put_draw(client, tokens, spec(opens_in_s=-7200, closes_in_s=-60))
    resp = await client.post("/v1/draws/d1/entries", json=CONSENT, headers=bearer)
    assert resp.status == 409
    assert (await resp.json())["type"].endswith("registration-closed")
    resp = await client.get("/v1/draws/d1/entries/me", headers=bearer)
    assert resp.status == 404  # nothing was written


async def test_consent_and_stratum_are_checked_and_change_nothing(
    client: TestClient, tokens: Tokens
) -> None:
    await put_draw(client, tokens, spec())
    bearer = {"Authorization": f"Bearer {tokens.account('fan-2')}"}
    for body, field in (
        ({**CONSENT, "accept_rules": False}, "accept_rules"),
        ({**CONSENT, "accept_data_processing": False}, "accept_data_processing"),
        ({**CONSENT, "stratum": "vip"}, "stratum"),
        ({**CONSENT, "stratum": "Not valid!"}, "stratum"),
        ({**CONSENT, "name": "Jean Dupont"}, "name"),  # no personal data accepted
        ({"accept_rules": True}, "accept_data_processing"),
    ):
        resp = await client.post("/v1/draws/d1/entries", json=body, headers=bearer)
        problem = await resp.json()
        assert resp.status == 422, problem
        assert [e["field"] for e in problem["errors"]] == [field], problem
    resp = await client.get("/v1/draws/d1/entries/me", headers=bearer)
    assert resp.status == 404
    resp = await client.post("/v1/draws/d1/entries", json=CONSENT, headers={})
    assert resp.status == 401
    resp = await client.post("/v1/draws/nope/entries", json=CONSENT, headers=bearer)
    assert resp.status == 404


async def test_a_club_claim_and_withdrawal_before_close(client: TestClient, tokens: Tokens) -> None:
    await put_draw(client, tokens, spec())
    bearer = {"Authorization": f"Bearer {tokens.account('member')}"}
    resp = await client.post(
        "/v1/draws/d1/entries", json={**CONSENT, "stratum": "club"}, headers=bearer
    )
    assert resp.status == 201
    assert (await resp.json())["stratum"] == "club"
    resp = await client.delete("/v1/draws/d1/entries/me", headers=bearer)
    assert resp.status == 200
    assert (await (await client.get("/v1/draws/d1")).json())["entries"] == {"club": 0}
    resp = await client.get("/v1/draws/d1/entries/me", headers=bearer)
    assert resp.status == 404
    resp = await client.delete("/v1/draws/d1/entries/me", headers=bearer)
    assert resp.status == 404


async def test_no_withdrawal_after_close(client: TestClient, tokens: Tokens) -> None:
    await put_draw(client, tokens, spec())
    bearer = {"Authorization": f"Bearer {tokens.account('late')}"}
    resp = await client.post("/v1/draws/d1/entries", json=CONSENT, headers=bearer)
    assert resp.status == 201
    await put_draw(client, tokens, spec(opens_in_s=-7200, closes_in_s=-1))
    resp = await client.delete("/v1/draws/d1/entries/me", headers=bearer)
    assert resp.status == 409
    resp = await client.post("/v1/draws/d1/entries", json=CONSENT, headers=bearer)
    assert resp.status == 200  # a repeat after the close still returns the entry


async def test_admin_put_needs_the_scope_and_a_valid_spec(
    client: TestClient, tokens: Tokens
) -> None:
    url = "/v1/admin/draws/d1"
    resp = await client.put(
        url, json=spec(), headers={"Authorization": f"Bearer {tokens.admin('rooms:write')}"}
    )
    assert resp.status == 403
    admin = {"Authorization": f"Bearer {tokens.admin('draws:write')}"}
    for body, field in (
        (spec(opens_in_s=10, closes_in_s=5), "registration_closes_at"),
        (spec(strata=["club", "club"]), "strata"),
        (spec(strata=["club"]), "default_stratum"),
    ):
        resp = await client.put(url, json=body, headers=admin)
        problem = await resp.json()
        assert resp.status == 422, problem
        assert [e["field"] for e in problem["errors"]] == [field], problem
    assert (await client.get("/v1/draws/d1")).status == 404  # nothing was created
    assert DrawKeys("d1").cfg.startswith("g:{draw:d1}")
