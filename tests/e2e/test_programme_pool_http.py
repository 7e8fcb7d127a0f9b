"""The State programme's pool over HTTP on a real Valkey: loading the pool (JSON and CSV),
programmes, allocations, roles, audit, reclaim."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from guichet import cli
from guichet.config import Settings
from tests.conftest import Client, Tokens, metric_value, metrics_when, settings_file
from tests.e2e.programme_helpers import (
    allocate,
    auditor,
    central,
    declared,  # noqa: F401 (the fixture)
    load_pool,
    operator,
    pool_rows,
    programme_body,
    put_programme,
    setup_programme,
)

P = "youth-75"
pytestmark = pytest.mark.usefixtures("declared")


async def problem(resp: Any, status: int, slug: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body: dict[str, Any] = await resp.json()
    assert body["type"].endswith(slug), body
    return body


async def pool_view(client: Client, tokens: Tokens, games: str = "olympic") -> dict[str, Any]:
    resp = await client.get(f"/v1/admin/programme/pool?games={games}", headers=central(tokens))
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_the_pool_loads_once_as_json_or_csv_and_a_bad_row_is_named(
    client: Client, tokens: Tokens
) -> None:
    loaded = await load_pool(client, tokens, pool_rows(sessions=2, quantity=50))
    assert loaded == {"loaded": [{"games": "olympic", "tickets": 200}]}
    view = await pool_view(client, tokens)
    eve = 1722463199999999  # 2024-07-31T23:59:59.999999+02:00: the session's eve, Paris
    assert view["sessions"]["ATH-00"] == {
        "date": "2024-08-01", "games": "olympic", "name": "Session 0", "withdraw_until_us": eve,
    }  # fmt: skip
    assert view["items"][0] == {"session": "ATH-00", "category": "A", "loaded": 50, "pool": 50,
                                "allocated": 0, "assigned": 0, "used": 0}  # fmt: skip
    again = await client.put("/v1/admin/programme/pool", json={"tickets": pool_rows()},
                             headers=central(tokens))  # fmt: skip
    body = await problem(again, 409, "pool-loaded")
    assert body["context"] == {"games": "olympic", "loaded": 200}
    assert (await pool_view(client, tokens))["items"][0]["loaded"] == 50  # nothing changed

    bad = ("games,session,date,name,category,quantity\n"
           "paralympic,PAR-01,2024-09-01,Para final,A,10\n"
           "paralympic,PAR-01,2024-09-01,Para final,B,zero\n")  # fmt: skip
    resp = await client.put("/v1/admin/programme/pool", data=bad.encode(),
                            headers={**central(tokens), "Content-Type": "text/csv"})  # fmt: skip
    body = await problem(resp, 422, "validation")
    assert body["errors"][0]["field"] == "body"
    assert "line 3" in body["errors"][0]["detail"]
    assert (await pool_view(client, tokens, "paralympic"))["items"] == []  # all or nothing
    good = bad.replace("zero", "5")
    resp = await client.put("/v1/admin/programme/pool", data=good.encode(),
                            headers={**central(tokens), "Content-Type": "text/csv"})  # fmt: skip
    assert resp.status == 200, await resp.text()
    assert (await resp.json()) == {"loaded": [{"games": "paralympic", "tickets": 15}]}
    resp = await client.put("/v1/admin/programme/pool", data=b"x",
                            headers={**central(tokens), "Content-Type": "text/plain"})  # fmt: skip
    await problem(resp, 415, "unsupported-media-type")


async def test_pool_writes_are_the_central_roles(client: Client, tokens: Tokens) -> None:
    for headers in (operator(tokens, P), auditor(tokens)):
        resp = await client.put("/v1/admin/programme/pool", json={"tickets": pool_rows()},
                                headers=headers)  # fmt: skip
        assert resp.status == 403
        resp = await client.put(f"/v1/admin/programmes/{P}", json=programme_body(),
                                headers=headers)  # fmt: skip
        assert resp.status == 403
    assert (await client.get("/v1/admin/programme/pool?games=olympic")).status == 401
    resp = await client.get("/v1/admin/programme/pool?games=olympic", headers=auditor(tokens))
    assert resp.status == 200
    resp = await client.get("/v1/admin/programme/pool?games=winter", headers=auditor(tokens))
    body = await problem(resp, 422, "validation")
    assert body["errors"][0]["field"] == "games"


async def test_a_programme_is_read_by_central_its_operator_and_auditors_only(
    client: Client, tokens: Tokens
) -> None:
    created = await client.put(f"/v1/admin/programmes/{P}", json=programme_body(),
                               headers=central(tokens, "dijop-7"))  # fmt: skip
    assert created.status == 201, await created.text()
    view = await created.json()
    assert view["by"] == "dijop-7"  # the actor is recorded
    assert view["at"].endswith("Z")
    assert view["reclaim_on"] == "2024-05-01"  # the olympic default (seed §2)
    assert view["reclaim_at"] == "2024-04-30T22:00:00Z"  # 00:00 Paris
    for headers in (central(tokens), operator(tokens, P), operator(tokens, "x", P),
                    auditor(tokens)):  # fmt: skip
        resp = await client.get(f"/v1/admin/programmes/{P}", headers=headers)
        assert resp.status == 200, await resp.text()
    resp = await client.get(f"/v1/admin/programmes/{P}", headers=operator(tokens, "agents-13"))
    body = await problem(resp, 403, "not-your-programme")
    assert body["context"] == {"programme": P}
    resp = await client.get("/v1/admin/programmes/nope", headers=central(tokens))
    await problem(resp, 404, "not-found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"retention_until": "2024-04-01"}, "retention_until"),
        ({"criteria": []}, "criteria"),
        ({"public": "tourists"}, "public"),
        ({"games": "winter"}, "games"),
        ({"operator": "OP"}, "operator"),
        ({"birth_date": "2000-01-01"}, "birth_date"),
        ({"reclaim_on": "2024-02-30"}, "reclaim_on"),
    ],
)
async def test_a_bad_programme_is_refused_naming_the_field(
    client: Client, tokens: Tokens, body: dict[str, Any], field: str
) -> None:
    resp = await client.put(f"/v1/admin/programmes/{P}", json=programme_body(**body),
                            headers=central(tokens))  # fmt: skip
    problem_body = await problem(resp, 422, "validation")
    assert problem_body["errors"][0]["field"] == field
    assert (await client.get(f"/v1/admin/programmes/{P}", headers=central(tokens))).status == 404


async def test_public_and_games_are_fixed_once_created(client: Client, tokens: Tokens) -> None:
    await put_programme(client, tokens, P)
    resp = await client.put(f"/v1/admin/programmes/{P}", json=programme_body(public="agents"),
                            headers=central(tokens))  # fmt: skip
    assert (await problem(resp, 409, "programme-fixed"))["errors"][0]["field"] == "public"
    resp = await client.put(f"/v1/admin/programmes/{P}", json=programme_body(games="paralympic"),
                            headers=central(tokens))  # fmt: skip
    assert (await problem(resp, 409, "programme-fixed"))["errors"][0]["field"] == "games"
    updated = await put_programme(client, tokens, P, criteria=["other"])
    assert updated["criteria"] == ["other"]
    assert updated["public"] == "youth"


async def test_allocations_are_all_or_nothing_and_name_the_short_item(
    client: Client, tokens: Tokens
) -> None:
    got = await setup_programme(client, tokens, P, allocation={"ATH-00:A": 60})
    assert got["allocation"] == {"ATH-00:A": 60}
    assert got["stats"] == {"allocated": 60}
    url = f"/v1/admin/programmes/{P}/allocations"
    items = [{"session": "ATH-01", "category": "A", "quantity": 5},
             {"session": "ATH-00", "category": "A", "quantity": 41}]  # fmt: skip
    resp = await client.post(url, json={"items": items}, headers=central(tokens))
    body = await problem(resp, 409, "pool-short")
    assert body["context"] == {"item": "ATH-00:A", "left": 40}
    view = await pool_view(client, tokens)
    assert {(i["session"], i["category"]): i["pool"] for i in view["items"]}[("ATH-01", "A")] == 100
    one = {"session": "NOPE", "category": "A", "quantity": 1}
    resp = await client.post(url, json={"items": [one]}, headers=central(tokens))
    assert (await problem(resp, 422, "validation"))["errors"][0]["field"] == "items"
    zero = {"session": "ATH-00", "category": "A", "quantity": 0}
    resp = await client.post(url, json={"items": [zero]}, headers=central(tokens))
    assert (await problem(resp, 422, "validation"))["errors"][0]["field"] == "items[0].quantity"
    resp = await client.post(url, json={"items": items}, headers=operator(tokens, P))
    assert resp.status == 403
    resp = await client.post("/v1/admin/programmes/nope/allocations", json={"items": items},
                             headers=central(tokens))  # fmt: skip
    await problem(resp, 404, "not-found")
    answer = await allocate(client, tokens, P, {"ATH-00:A": 40, "ATH-01:B": 1})
    assert answer == {"programme": P, "allocated": 41,
                      "allocation": {"ATH-00:A": 100, "ATH-01:B": 1}}  # fmt: skip
    audit = await client.get("/v1/admin/programme/audit?games=olympic", headers=auditor(tokens))
    assert (await audit.json()) == {"games": "olympic", "items": 6, "loaded": 600, "pool": 499,
                                    "allocated": 101, "assigned": 0, "used": 0,
                                    "breaches": []}  # fmt: skip
    text = await metrics_when(
        client, lambda t: 'guichet_programme_acts{act="allocated",programme="youth-75"} 101.0' in t
    )
    assert (
        metric_value(text, "guichet_programme_invariant_tickets", games="olympic", term="pool")
        == 499
    )


async def test_reclaim_is_refused_before_the_date_then_idempotent(
    client: Client, tokens: Tokens, settings: Settings, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    await setup_programme(client, tokens, "late", reclaim_on="2999-05-01",
                          retention_until="2999-12-31")  # fmt: skip
    url = "/v1/admin/programme/reclaim"
    resp = await client.post(url, json={"games": "olympic"}, headers=central(tokens))
    body = await problem(resp, 409, "reclaim-too-early")
    assert body["context"] == {"programme": "late", "reclaim_at": "2999-04-30T22:00:00Z"}
    assert (await pool_view(client, tokens))["items"][0]["allocated"] == 10  # nothing moved
    await put_programme(client, tokens, "early", reclaim_on="2024-05-01")
    await allocate(client, tokens, "early", {"ATH-00:A": 7, "ATH-01:B": 3})
    resp = await client.post(url, json={"games": "olympic"}, headers=operator(tokens, "early"))
    assert resp.status == 403
    resp = await client.post(url, json={"games": "olympic"}, headers=central(tokens))
    assert resp.status == 200, await resp.text()
    report = await resp.json()
    assert report["programmes"] == [
        {"programme": "early", "outcome": "reclaimed", "tickets": 10,
         "reclaim_at": "2024-04-30T22:00:00Z"},
        {"programme": "late", "outcome": "too_early", "tickets": 0,
         "reclaim_at": "2999-04-30T22:00:00Z"},
    ]  # fmt: skip
    view = await client.get("/v1/admin/programmes/early", headers=central(tokens))
    early = await view.json()
    assert early["allocation"] == {}
    assert early["stats"] == {"allocated": 10, "reclaimed": 10}
    assert early["reclaimed_at"].endswith("Z")
    resp = await client.post(url, json={"games": "olympic"}, headers=central(tokens))
    assert (await resp.json())["programmes"][0]["outcome"] == "done"  # idempotent
    assert (await pool_view(client, tokens))["items"][0] == {
        "session": "ATH-00", "category": "A", "loaded": 100, "pool": 90, "allocated": 10,
        "assigned": 0, "used": 0}  # fmt: skip
    one = {"session": "ATH-00", "category": "A", "quantity": 1}
    resp = await client.post("/v1/admin/programmes/early/allocations", json={"items": [one]},
                             headers=central(tokens))  # fmt: skip
    await problem(resp, 409, "programme-reclaimed")

    config = str(settings_file(settings, tmp_path / "ops.toml"))
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, ["--config", config, "programme", "reclaim",
                                              "--games", "olympic"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1
    assert "early: reclaimed before; nothing to do" in out
    assert "late: NOT reclaimed: its reclaim date is 2999-04-30T22:00:00Z" in out
    assert "before their reclaim date" in err
    code = await asyncio.to_thread(cli.main, ["--config", config, "programme", "audit"])
    out, _ = capsys.readouterr()
    assert code == 0, out
    assert "olympic: 6 items: loaded 600 = pool 590 + allocated 10 + assigned 0 + used 0" in out


_ROW = ("olympic", "paralympic", "ATH-01", "2024-08-01", "A", "1", "-1", "x", "", "é", '"')


@hypothesis.settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(
    content_type=st.sampled_from(["application/json", "text/csv", "text/plain"]),
    data=st.one_of(
        st.binary(max_size=200),
        st.builds(lambda rows: ("games,session,date,name,category,quantity\n" + "\n".join(
            ",".join(r) for r in rows)).encode(),
            st.lists(st.lists(st.sampled_from(_ROW), max_size=7), max_size=4)),
        st.builds(lambda v: json.dumps({"tickets": v}).encode(), st.lists(
            st.dictionaries(st.sampled_from(["games", "session", "date", "name", "category",
                                             "quantity", "x"]),
                            st.none() | st.integers(-2, 3) | st.sampled_from(_ROW)),
            max_size=3)),
    ),
)  # fmt: skip
async def test_any_pool_upload_loads_or_is_a_4xx_never_a_5xx(
    client: Client, tokens: Tokens, content_type: str, data: bytes
) -> None:
    resp = await client.put("/v1/admin/programme/pool", data=data,
                            headers={**central(tokens), "Content-Type": content_type})  # fmt: skip
    assert resp.status == 200 or 400 <= resp.status < 500, await resp.text()
    if resp.status != 200:
        assert resp.content_type == "application/problem+json"
    for games in ("olympic", "paralympic"):  # whatever happened, the counts agree
        audit = await client.get(f"/v1/admin/programme/audit?games={games}",
                                 headers=central(tokens))  # fmt: skip
        assert (await audit.json())["breaches"] == []
