"""Draw registration over HTTP: idempotent and race-free, period enforced, consent required."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from guichet import auth, cli
from guichet.app import create_app
from guichet.config import Settings
from guichet.draw import monitor
from guichet.state import DRAWS
from guichet.store import sync
from guichet.store.keys import DrawKeys
from tests.conftest import (
    Backend,
    Client,
    Tokens,
    make_settings,
    metric_value,
    metrics_when,
    settings_file,
)

CONSENT = {"accept_rules": True, "accept_data_processing": True}


def spec(opens_in_s: float = -60, closes_in_s: float = 3600, **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "registration_opens_at": (now + timedelta(seconds=opens_in_s)).isoformat(),
        "registration_closes_at": (now + timedelta(seconds=closes_in_s)).isoformat(),
        "strata": ["club", "general"],
        **extra,
    }


async def put_draw(client: Client, tokens: Tokens, body: dict[str, Any]) -> int:
    resp = await client.put(
        "/v1/admin/draws/d1",
        json=body,
        headers={"Authorization": f"Bearer {tokens.admin('draws:write')}"},
    )
    assert resp.status in (200, 201), await resp.text()
    return resp.status


async def test_100_concurrent_duplicate_registrations_make_one_entry(
    client: Client, tokens: Tokens
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


async def test_outside_the_period_is_409_naming_it(client: Client, tokens: Tokens) -> None:
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
    client: Client, tokens: Tokens
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


def member_token(tokens: Tokens, account: str, groups: list[str]) -> str:
    """An account token whose groups claim (``security.groups_claim``) lists ``groups``."""
    sec = tokens.sec
    return auth.mint(tokens.key, issuer=sec.issuer, audience=sec.audience, subject=account,
                     ttl_s=600, groups=groups, groups_claim=sec.groups_claim)  # fmt: skip


async def test_a_club_claim_and_withdrawal_before_close(client: Client, tokens: Tokens) -> None:
    await put_draw(client, tokens, spec())
    bearer = {"Authorization": f"Bearer {member_token(tokens, 'member', ['club'])}"}
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


async def test_no_withdrawal_after_close(client: Client, tokens: Tokens) -> None:
    await put_draw(client, tokens, spec())
    bearer = {"Authorization": f"Bearer {tokens.account('late')}"}
    resp = await client.post("/v1/draws/d1/entries", json=CONSENT, headers=bearer)
    assert resp.status == 201
    await put_draw(client, tokens, spec(opens_in_s=-7200, closes_in_s=-1))
    resp = await client.delete("/v1/draws/d1/entries/me", headers=bearer)
    assert resp.status == 409
    resp = await client.post("/v1/draws/d1/entries", json=CONSENT, headers=bearer)
    assert resp.status == 200  # a repeat after the close still returns the entry


async def test_admin_put_needs_the_scope_and_a_valid_spec(client: Client, tokens: Tokens) -> None:
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
        (spec(restricted=["press"]), "restricted"),
        (spec(restricted=["general"]), "restricted"),  # the default stays open
    ):
        resp = await client.put(url, json=body, headers=admin)
        problem = await resp.json()
        assert resp.status == 422, problem
        assert [e["field"] for e in problem["errors"]] == [field], problem
    assert (await client.get("/v1/draws/d1")).status == 404  # nothing was created
    assert DrawKeys("d1").cfg.startswith("g:{draw:d1}")


async def test_a_draw_through_its_life_over_http(
    client: Client, tokens: Tokens, settings: Settings, tmp_path: Path
) -> None:
    """Registered → committed (published, rules locked) → drawn (transcript) → windows."""
    await put_draw(client, tokens, spec(sale="s1"))
    bearers = {a: {"Authorization": f"Bearer {tokens.account(a)}"} for a in ("a", "b", "c")}
    for bearer in bearers.values():
        assert (
            await client.post("/v1/draws/d1/entries", json=CONSENT, headers=bearer)
        ).status == 201
    public = await (await client.get("/v1/draws/d1")).json()
    assert public["status"] == "registration_open"
    assert "commitment" not in public
    assert (await client.get("/v1/draws/d1/transcript")).status == 404
    config = settings_file(settings, tmp_path / "ops.toml")
    assert await asyncio.to_thread(cli.main, ["--config", str(config), "draw", "commit", "d1"]) == 0
    public = await (await client.get("/v1/draws/d1")).json()
    assert len(public["commitment"]) == 64
    assert public["committed_at"].endswith("Z")
    resp = await client.put(
        "/v1/admin/draws/d1",
        json=spec(sale="s1", closes_in_s=60),
        headers={"Authorization": f"Bearer {tokens.admin('draws:write')}"},
    )
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["type"].endswith("draw-committed")

    redis_client = await asyncio.to_thread(sync.connect, settings.redis, settings.redis.url
                                           or tuple(settings.redis.cluster_seeds))  # fmt: skip
    seconds, micros = await asyncio.to_thread(redis_client.time)
    await asyncio.to_thread(redis_client.hset, DrawKeys("d1").cfg, "closes_us",
                            seconds * 1_000_000 + micros)  # fmt: skip
    run_args = ["--config", str(config), "draw", "run", "d1", "--beacon-text", "loto 2026-11-23",
                "--quiet"]  # fmt: skip
    assert await asyncio.to_thread(cli.main, run_args) == 0
    public = await (await client.get("/v1/draws/d1")).json()
    assert (public["status"], public["ranked"]) == ("drawn", 3)
    transcript = await (await client.get(public["transcript_url"])).json()
    assert transcript["commitment"] == public["commitment"]
    assert bytes.fromhex(transcript["beacon"]) == b"loto 2026-11-23"
    statuses = [
        (await (await client.get("/v1/draws/d1/entries/me", headers=b)).json())["status"]
        for b in bearers.values()
    ]
    assert statuses == ["not_selected_yet"] * 3
    start = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    wave = ["--config", str(config), "draw", "release-wave", "d1", "--count", "2", "--start",
            start, "--quiet"]  # fmt: skip
    assert await asyncio.to_thread(cli.main, wave) == 0
    entries = [
        await (await client.get("/v1/draws/d1/entries/me", headers=b)).json()
        for b in bearers.values()
    ]
    assigned = [e for e in entries if e["status"] == "window_assigned"]
    assert len(assigned) == 2
    window = assigned[0]["window"]
    assert (window["sale"], window["wave"]) == ("s1", 1)
    starts, ends = (datetime.fromisoformat(window[k]) for k in ("starts_at", "ends_at"))
    assert ends - starts == timedelta(hours=48)
    again = await client.post("/v1/draws/d1/entries", json=CONSENT,
                              headers=bearers[assigned[0]["account"]])  # fmt: skip
    assert again.status == 200
    assert (await again.json())["status"] == "window_assigned"
    # Ops see it: the gauges come from Redis (the batch jobs are not scraped).
    if client.app is not None:
        await monitor.refresh(client.app[DRAWS])
    # With worker processes, wait for their monitor's next round (draws.monitor_interval_s).
    text = await metrics_when(
        client, lambda t: metric_value(t, "guichet_draw_windows_assigned", draw="d1") == 2
    )
    assert metric_value(text, "guichet_draw_ranked_entries", draw="d1") == 3
    assert metric_value(text, "guichet_draw_windows_assigned", draw="d1") == 2
    assert metric_value(text, "guichet_draw_run_progress_ratio", draw="d1") == 1
    assert metric_value(text, "guichet_outbox_backlog", sale="s1", state="undelivered") == 2
    assert metric_value(text, "guichet_outbox_lag_seconds", sale="s1") == 0  # not due yet


@pytest.fixture
def app_with_a_defined_draw(tmp_path: Path, backend: Backend) -> web.Application:
    now = datetime.now(UTC)
    definition = {"id": "from-file", "registration_opens_at": now.isoformat(),
                  "registration_closes_at": (now + timedelta(days=30)).isoformat(),
                  "strata": ["club", "general"], "sale": "s1"}  # fmt: skip
    settings = make_settings(tmp_path, backend.redis_section, draws={"define": [definition]})
    return create_app(settings)


async def test_draws_from_the_config_file(app_with_a_defined_draw: web.Application) -> None:
    async with TestClient(TestServer(app_with_a_defined_draw, host="127.0.0.1")) as c:
        body = await (await c.get("/v1/draws/from-file")).json()
        assert body["spec"]["strata"] == ["club", "general"]
        assert body["status"] == "registration_open"


async def test_a_burst_of_public_reads_waits_for_connections_instead_of_failing(
    client: Client, tokens: Tokens
) -> None:
    """400 people open the draw's page at once (plain Redis reads, more than the pool's
    connections): every one gets it (on a Cluster the client queues them)."""
    await put_draw(client, tokens, spec())
    resps = await asyncio.gather(*(client.get("/v1/draws/d1") for _ in range(400)))
    assert [r.status for r in resps] == [200] * 400


async def test_a_strata_change_that_orphans_entries_is_409_and_changes_nothing(
    client: Client, tokens: Tokens
) -> None:
    """Entries naming a stratum the new spec leaves out: refused, naming the stratum and how
    many entries it holds; a change keeping every stratum with entries goes through."""
    body = spec(strata=["club", "general", "press"], restricted=[])  # all open: anyone claims
    assert await put_draw(client, tokens, body) == 201
    for i, stratum in enumerate(["club", "club", "general"]):
        bearer = {"Authorization": f"Bearer {tokens.account(f'fan-{i}')}"}
        resp = await client.post(
            "/v1/draws/d1/entries", json={**CONSENT, "stratum": stratum}, headers=bearer
        )
        assert resp.status == 201, await resp.text()
    admin = {"Authorization": f"Bearer {tokens.admin('draws:write')}"}
    before = await (await client.get("/v1/draws/d1")).json()
    body = spec(strata=["general"], restricted=[])
    resp = await client.put("/v1/admin/draws/d1", json=body, headers=admin)
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert problem["type"].endswith("draw-stratum-has-entries")
    assert problem["context"] == {"stratum": "club", "entries": 2}
    assert "'club'" in problem["detail"]
    assert "2 entries" in problem["detail"]
    assert await (await client.get("/v1/draws/d1")).json() == before  # nothing changed
    # A withdrawn stratum's last entry frees it; an empty stratum may go.
    fan2 = {"Authorization": f"Bearer {tokens.account('fan-2')}"}
    assert (await client.delete("/v1/draws/d1/entries/me", headers=fan2)).status == 200
    body = spec(strata=["club"], default_stratum="club", restricted=[])
    assert await put_draw(client, tokens, body) == 200  # 'general' (0 left), 'press' gone
    shown = await (await client.get("/v1/draws/d1")).json()
    assert shown["spec"]["strata"] == ["club"]


async def ops(settings: Settings, tmp_path: Path, *args: str) -> int:
    """``guichet …`` as ops run it, with these settings."""
    config = settings_file(settings, tmp_path / "ops.toml")
    return await asyncio.to_thread(cli.main, ["--config", str(config), *args])


async def register(client: Client, token: str, stratum: str | None = None) -> Any:
    body = CONSENT if stratum is None else {**CONSENT, "stratum": stratum}
    resp = await client.post(
        "/v1/draws/d1/entries", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    return resp.status, await resp.json()


async def test_a_restricted_stratum_is_for_its_members_only(
    client: Client, tokens: Tokens, settings: Settings, tmp_path: Path
) -> None:
    """Issue 13, item 2: ``club`` (restricted by default: every stratum but the default) is
    refused to a self-declared claim, 403 not-a-member naming the field, nothing written;
    members come from the token's groups claim or from the list ops load; a member without a
    claim lands in their highest stratum, and may still choose a lower one."""
    assert await put_draw(client, tokens, spec(strata=["club", "press", "general"])) == 201
    shown = await (await client.get("/v1/draws/d1")).json()
    assert shown["spec"]["restricted"] == ["club", "press"]
    status, problem = await register(client, tokens.account("intruder"), "club")
    assert status == 403, problem
    assert problem["type"].endswith("not-a-member")
    assert [e["field"] for e in problem["errors"]] == ["stratum"]
    assert problem["context"] == {"stratum": "club"}
    bearer = {"Authorization": f"Bearer {tokens.account('intruder')}"}
    assert (await client.get("/v1/draws/d1/entries/me", headers=bearer)).status == 404
    # by token: the groups claim; without a claim, the highest stratum held
    status, entry = await register(client, member_token(tokens, "m1", ["press", "club", "x"]))
    assert (status, entry["stratum"]) == (201, "club")
    status, entry = await register(client, member_token(tokens, "m2", ["press"]), "general")
    assert (status, entry["stratum"]) == (201, "general")
    status, problem = await register(client, member_token(tokens, "m3", ["press"]), "club")
    assert status == 403, problem
    # by list: ops load account ids; a reload replaces the list
    members = tmp_path / "press.txt"
    members.write_text("# press accreditations\nlisted-1\r\nlisted-2\n\nlisted-1\n")
    assert await ops(settings, tmp_path, "draw", "members", "load", "d1", "press",
                     str(members)) == 0  # fmt: skip
    status, entry = await register(client, tokens.account("listed-1"))
    assert (status, entry["stratum"]) == (201, "press")
    status, problem = await register(client, tokens.account("listed-3"), "press")
    assert status == 403, problem
    members.write_text("listed-3\n")
    assert await ops(settings, tmp_path, "draw", "members", "load", "d1", "press",
                     str(members)) == 0  # fmt: skip
    status, entry = await register(client, tokens.account("listed-3"), "press")
    assert (status, entry["stratum"]) == (201, "press")
    status, entry = await register(client, tokens.account("listed-2"))  # no longer listed
    assert (status, entry["stratum"]) == (201, "general")
    counts = (await (await client.get("/v1/draws/d1")).json())["entries"]
    assert counts == {"club": 1, "press": 2, "general": 2}
    # an open stratum has no list; a bad file changes nothing
    assert await ops(settings, tmp_path, "draw", "members", "load", "d1", "general",
                     str(members)) == 1  # fmt: skip
    members.write_bytes(b"ok\nbad\tid\n")
    assert await ops(settings, tmp_path, "draw", "members", "load", "d1", "press",
                     str(members)) == 1  # fmt: skip
    assert await ops(settings, tmp_path, "draw", "members", "show", "d1") == 0


async def test_member_lists_are_fixed_by_the_commitment(
    client: Client, tokens: Tokens, settings: Settings, tmp_path: Path, capsys: Any
) -> None:
    await put_draw(client, tokens, spec())
    members = tmp_path / "club.txt"
    members.write_text("a\nb\n")
    assert await ops(settings, tmp_path, "draw", "members", "load", "d1", "club",
                     str(members)) == 0  # fmt: skip
    assert await ops(settings, tmp_path, "draw", "commit", "d1") == 0
    members.write_text("c\n")
    assert await ops(settings, tmp_path, "draw", "members", "load", "d1", "club",
                     str(members)) == 1  # fmt: skip
    capsys.readouterr()
    assert await ops(settings, tmp_path, "draw", "members", "show", "d1", "--account", "b") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["members"] == {"club": 2}
    assert shown["listed_in"] == ["club"]
    status, entry = await register(client, tokens.account("b"))
    assert (status, entry["stratum"]) == (201, "club")
    status, _ = await register(client, tokens.account("c"), "club")
    assert status == 403
