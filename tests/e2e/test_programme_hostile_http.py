"""Hostile input to every programme route that parses outside bytes (issue 14): path segments
(programme, lottery, group, pseudonym and ticket ids), the link code in ``X-Ticket-Code``, and
bodies of arbitrary bytes or arbitrary JSON (valid bodies with one field replaced). Nothing
but a 2xx or a 4xx problem+json, never a 5xx; the pool's counts stay consistent.

One programme is set up through the API on the first example and reused by the others (the
examples share the test's Valkey)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import hypothesis
import pytest
from hypothesis import strategies as st

from tests.conftest import Client, Tokens
from tests.e2e.programme_helpers import (
    allocate,
    central,
    declared,  # noqa: F401 (the fixture)
    load_pool,
    operator,
    pool_rows,
    put_programme,
)
from tests.e2e.test_programme_flow_http import DAY, candidate

pytestmark = pytest.mark.usefixtures("declared")

P = "youth-75"
ADMIN = f"/v1/admin/programmes/{P}"
PUBLIC = f"/v1/programmes/{P}"
LEADER = "acc-leader-1"
FUZZ = hypothesis.settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)

# every route that parses outside bytes: method, path ({} = the fuzzed segment's place), who
# calls it, and a valid body (None: no body)
VALID_CANDIDATE = candidate(3, "l1")
ROUTES: list[tuple[str, str, str, Any]] = [
    ("PUT", "/v1/admin/programmes/{}", "central",
     {"public": "youth", "games": "olympic", "operator": "op-1",
      "retention_until": "2099-12-31", "criteria": ["age-16-25"]}),
    ("GET", "/v1/admin/programmes/{}", "central", None),
    ("POST", "/v1/admin/programmes/{}/allocations", "central",
     {"items": [{"session": "ATH-00", "category": "A", "quantity": 1}]}),
    ("POST", "/v1/admin/programme/reclaim", "central", {"games": "olympic"}),
    ("POST", ADMIN + "/lotteries", "operator",
     {"id": "l9", "session": "ATH-00", "category": "A", "closes_at": "2099-01-01T00:00:00Z"}),
    ("GET", ADMIN + "/lotteries/{}", "operator", None),
    ("POST", ADMIN + "/lotteries/{}/commit", "operator", None),
    ("POST", ADMIN + "/lotteries/{}/run", "operator", {"beacon_text": "x"}),
    ("POST", ADMIN + "/lotteries/{}/assign", "operator", {"max": 1}),
    ("POST", ADMIN + "/designations", "operator",
     {"person": "0" * 64, "session": "ATH-00", "category": "A",
      "justification": "a hostile justification text"}),
    ("POST", ADMIN + "/tickets/{}/withdraw", "operator", None),
    ("POST", ADMIN + "/candidates", "operator", VALID_CANDIDATE),
    ("GET", ADMIN + "/candidates/{}", "operator", None),
    ("PUT", ADMIN + "/candidates/{}/guardian", "operator",
     {"name": "Gaspard Tuteur", "relationship": "parent", "consented_at": "2024-03-01T09:00:00Z"}),
    ("PUT", ADMIN + "/candidates/{}/reuse-consent", "operator", {"version": "r1"}),
    ("DELETE", ADMIN + "/candidates/{}/reuse-consent", "operator", None),
    ("POST", ADMIN + "/groups", "operator", {"id": "g9", "leader": "acc-9"}),
    ("PUT", ADMIN + "/groups/{}/mobility", "operator", {"count": 2}),
    ("POST", "/v1/admin/programmes/{}/purge", "central", None),
    ("POST", PUBLIC + "/groups/{}/candidates", "leader", VALID_CANDIDATE),
    ("PUT", PUBLIC + "/groups/g1/candidates/{}/guardian", "leader",
     {"name": "Gaspard Tuteur", "relationship": "parent", "consented_at": "2024-03-01T09:00:00Z"}),
    ("PUT", PUBLIC + "/groups/{}/mobility", "leader", {"count": 1}),
    ("GET", PUBLIC + "/tickets/{}", "code", None),
    ("POST", PUBLIC + "/tickets/{}/commit", "code", {"charter_version": "c1", "attend": True}),
    ("POST", PUBLIC + "/tickets/{}/withdraw", "code", {}),
    ("POST", PUBLIC + "/tickets/{}/commit", "leader", {"charter_version": "c1", "attend": True}),
    ("POST", PUBLIC + "/tickets/{}/withdraw", "leader", {}),
]  # fmt: skip

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                  max_size=4),
    max_leaves=12,
)  # fmt: skip
_segment = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["youth-75", "l1", "g1", "x", "youth-75.l1.1", "youth-75.x.1", "0" * 64,
                     "youth-75.x", "youth-75.B@D.1", "youth-75..1", "..", "%00", "A" * 300]),
)  # fmt: skip
_code = st.one_of(  # what a client can put in a header: no control characters (DEL, C1 either)
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_categories=["Cc"]),
        max_size=80,
    ),
    st.text(alphabet="AZaz09_-", min_size=16, max_size=64),
)


async def ready(client: Client, tokens: Tokens) -> None:
    """Once: a pool, the programme, an allocation, a lottery, a group and a designated ticket."""
    r = await client.get(ADMIN, headers=central(tokens))
    if r.status == 200:
        return
    await load_pool(client, tokens, [{**row, "date": DAY.isoformat()} for row in pool_rows()])
    await put_programme(client, tokens, P, reclaim_on=(DAY + timedelta(days=60)).isoformat(),
                        retention_until=(DAY + timedelta(days=365)).isoformat())  # fmt: skip
    await allocate(client, tokens, P, {"ATH-00:A": 5})
    op = operator(tokens, P)
    closes = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = await client.post(f"{ADMIN}/lotteries", headers=op, json={
        "id": "l1", "session": "ATH-00", "category": "A", "closes_at": closes})  # fmt: skip
    assert r.status == 201, await r.text()
    r = await client.post(f"{ADMIN}/groups", json={"id": "g1", "leader": LEADER}, headers=op)
    assert r.status == 201, await r.text()
    leader = {"Authorization": f"Bearer {tokens.account(LEADER)}"}
    r = await client.post(f"{PUBLIC}/groups/g1/candidates", json=candidate(0, "l1"),
                          headers=leader)  # fmt: skip
    assert r.status == 201, await r.text()
    body = {"person": (await r.json())["pseudonym"], "session": "ATH-00", "category": "A",
            "justification": "named by the league for the hostile test"}  # fmt: skip
    r = await client.post(f"{ADMIN}/designations", json=body, headers=op)
    assert r.status == 201, await r.text()


def headers_for(tokens: Tokens, who: str, code: str | None) -> dict[str, str]:
    if who == "central":
        return central(tokens)
    if who == "operator":
        return operator(tokens, P)
    if who == "leader":
        return {"Authorization": f"Bearer {tokens.account(LEADER)}"}
    return {} if code is None else {"X-Ticket-Code": code}


async def answered(resp: Any) -> None:
    """A 2xx, or a 4xx problem+json: never a 5xx."""
    text = await resp.text()
    assert resp.status < 300 or 400 <= resp.status < 500, (resp.status, text)
    if resp.status >= 400:
        assert resp.content_type == "application/problem+json", text
        assert json.loads(text)["status"] == resp.status


async def consistent(client: Client, tokens: Tokens) -> None:
    r = await client.get("/v1/admin/programme/audit?games=olympic", headers=central(tokens))
    assert (await r.json())["breaches"] == []


@FUZZ
@hypothesis.given(route=st.sampled_from(ROUTES), segment=_segment, code=_code)
async def test_any_path_segment_or_link_code_is_a_4xx_at_worst(
    client: Client, tokens: Tokens, route: tuple[str, str, str, Any], segment: str, code: str
) -> None:
    await ready(client, tokens)
    method, path, who, body = route
    url = path.format(quote(segment, safe=""))
    headers = headers_for(tokens, who, code)
    if who == "code" and body is not None:
        body = {**body, "code": code}
    resp = await client.request(method, url, json=body, headers=headers)
    await answered(resp)
    await consistent(client, tokens)


@FUZZ
@hypothesis.given(
    route=st.sampled_from([r for r in ROUTES if r[3] is not None]),
    data=st.one_of(
        st.binary(max_size=200),
        st.builds(lambda v: json.dumps(v).encode(), _json),
    ),
    field=st.one_of(st.integers(0, 5), st.text(max_size=20)),
    value=_json,
)
async def test_any_body_is_a_4xx_at_worst(
    client: Client, tokens: Tokens, route: tuple[str, str, str, Any], data: bytes,
    field: int | str, value: Any,
) -> None:  # fmt: skip
    await ready(client, tokens)
    method, path, who, body = route
    known = [("tickets", "youth-75.x.1"), ("groups", "g1"), ("lotteries", "l1")]
    url = path.format(next((v for k, v in known if k in path), P))
    headers = {**headers_for(tokens, who, None), "Content-Type": "application/json"}
    resp = await client.request(method, url, data=data, headers=headers)
    await answered(resp)
    if isinstance(field, int) and body:  # a known field with a hostile value
        mutated = {**body, list(body)[field % len(body)]: value}
    else:  # an unknown field
        mutated = {**body, str(field): value}
    resp = await client.request(method, url, json=mutated, headers=headers_for(tokens, who, None))
    await answered(resp)
    await consistent(client, tokens)
