"""A person's rights over HTTP (issue 15, slice privacy): the access export (names opened only
there), the erasure of a candidacy when the rules allow it and its refusal once a ticket was
issued or a committed lottery counts them, the scope, hostile bodies; each successful act
leaves exactly one audit record (never the person in it), a refused one none."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from guichet.config import Settings
from guichet.store.client import Store
from guichet.store.keys import AUDIT_TAG, DRAWS_INDEX, SALES_INDEX, DrawKeys, SaleKeys, audit_chain
from tests.conftest import Client, Tokens
from tests.e2e.programme_helpers import (
    admin_token,
    bearer,
    declared,  # noqa: F401 (the fixture)
    operator,
    pool_rows,
    setup_programme,
)
from tests.e2e.test_programme_flow_http import candidate, cli_run, register
from tests.programme_seed_b import set_retention

P = "youth-75"
ADMIN = f"/v1/admin/programmes/{P}"
ACCESS, ERASURE = "/v1/admin/privacy/access", "/v1/admin/privacy/erasure"
DAY = date.today() + timedelta(days=30)
CHAIN = audit_chain("taj:olympic")
GUARDIAN = "Gaspard Tuteur-Lemoine"
pytestmark = pytest.mark.usefixtures("declared")
FUZZ = hypothesis.settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)


def dpo(tokens: Tokens) -> dict[str, str]:
    return bearer(admin_token(tokens, "privacy:dpo", subject="dpo-1"))


def who(body: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {k: body[k] for k in ("family_name", "given_names", "birth_date")} | more


async def records(store: Store) -> list[dict[str, str]]:
    """The games' chain's records of privacy acts (the agents' declarations and the
    programme's acts are in it too)."""
    entries: Any = await store.client.xrange(CHAIN)
    out = [{a.decode(): b.decode() for a, b in f.items()} for _, f in entries]
    return [r for r in out if r["action"].startswith("privacy.")]


async def setup(client: Client, tokens: Tokens) -> dict[str, Any]:
    """A programme with an open lottery l1 and a group g1; three candidates: 0 (a minor of g1
    with their guardian's consent), 1 and 2. Their bodies and pseudonyms."""
    rows = [{**r, "date": (DAY + timedelta(days=i)).isoformat()}
            for i, r in enumerate(pool_rows(sessions=1, categories="A"))]  # fmt: skip
    await setup_programme(client, tokens, P, pool=rows, allocation={"ATH-00:A": 5},
                          retention_until=(DAY + timedelta(days=365)).isoformat())  # fmt: skip
    op = operator(tokens, P)
    closes = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    r = await client.post(f"{ADMIN}/lotteries", headers=op,
                          json={"id": "l1", "session": "ATH-00", "category": "A",
                                "closes_at": closes})  # fmt: skip
    assert r.status == 201, await r.text()
    r = await client.post(f"{ADMIN}/groups", json={"id": "g1", "leader": "acc-lead"}, headers=op)
    assert r.status == 201, await r.text()
    minor = (DAY - timedelta(days=365 * 15)).isoformat()
    guardian = {"name": GUARDIAN, "relationship": "parent",
                "consented_at": "2024-02-01T10:00:00Z"}  # fmt: skip
    bodies = [candidate(0, "l1", birth=minor, group="g1", guardian=guardian),
              candidate(1, "l1"), candidate(2, "l1")]  # fmt: skip
    out = {"bodies": bodies, "people": []}
    for b in bodies:
        out["people"].append((await register(client, tokens, P, b))["pseudonym"])
    return out


async def test_access_opens_the_names_and_is_recorded_once(
    client: Client, store: Store, tokens: Tokens
) -> None:
    s = await setup(client, tokens)
    b0 = s["bodies"][0]
    # another spelling of the same person (identity.normalise): the same pseudonym
    asked = who(b0, family_name=b0["family_name"].upper().replace("-", " "))
    r = await client.post(ACCESS, json=asked, headers=dpo(tokens))
    assert r.status == 200, await r.text()
    export = await r.json()
    assert export["pseudonym"] == s["people"][0]
    [c] = export["candidacies"]
    assert c["name"] == f"{b0['given_names']} {b0['family_name']}"
    assert c["guardian"]["name"] == GUARDIAN
    assert c["guardian"]["relationship"] == "parent"
    assert (c["programme"], c["games"], c["lottery"], c["lottery_state"]) == (P, "olympic", "l1",
                                                                               "open")  # fmt: skip
    assert (c["group"], c["group_leader"], c["state"]) == ("g1", "acc-lead", "candidate")
    assert c["consent"]["version"] == "charte-v1"
    assert "ticket" not in c
    [rec] = await records(store)
    assert (rec["actor"], rec["action"], rec["object"], rec["outcome"]) == (
        "dpo-1",
        "privacy.access",
        "privacy:person",
        "read",
    )
    chain = json.dumps(await records(store))
    assert s["people"][0] not in chain
    assert b0["family_name"] not in chain
    # the operator's view never carries the name
    r = await client.get(f"{ADMIN}/candidates/{s['people'][0]}", headers=operator(tokens, P))
    assert b0["given_names"] not in await r.text()
    # nobody stored under these fields: 404, no record
    r = await client.post(ACCESS, json=who(b0, birth_date="1990-01-01"), headers=dpo(tokens))
    assert r.status == 404
    assert len(await records(store)) == 1


async def test_access_shows_the_ticket_the_register_and_the_notice(
    client: Client, store: Store, tokens: Tokens
) -> None:
    s = await setup(client, tokens)
    why = "replacement of an injured volunteer"
    r = await client.post(f"{ADMIN}/designations", headers=operator(tokens, P),
                          json={"person": s["people"][1], "session": "ATH-00", "category": "A",
                                "justification": why})  # fmt: skip
    assert r.status == 201, await r.text()
    tid = (await r.json())["ticket"]
    r = await client.post(ACCESS, json=who(s["bodies"][1]), headers=dpo(tokens))
    assert r.status == 200, await r.text()
    [c] = (await r.json())["candidacies"]
    assert c["ticket"]["id"] == tid
    assert c["ticket"]["state"] == "assigned"
    assert c["benefit"] == P
    assert c["state"] == "assigned"
    assert [e["justification"] for e in c["exceptions"]] == [why]
    assert [n["ticket"] for n in c["notices"]] == [tid]


async def test_erasure_where_allowed_and_refused_where_the_controls_need_the_record(
    client: Client, store: Store, tokens: Tokens
) -> None:
    s = await setup(client, tokens)
    bodies, people = s["bodies"], s["people"]
    op = operator(tokens, P)
    stats = (await (await client.get(ADMIN, headers=bearer(admin_token(
        tokens, "programme:central")))).json())["stats"]  # fmt: skip
    # a ticket issued: refused, the date it becomes possible named, nothing changed
    r = await client.post(f"{ADMIN}/designations", headers=op,
                          json={"person": people[1], "session": "ATH-00", "category": "A",
                                "justification": "a referee named by the league"})  # fmt: skip
    assert r.status == 201, await r.text()
    r = await client.post(ERASURE, json=who(bodies[1], programme=P), headers=dpo(tokens))
    assert r.status == 409, await r.text()
    problem = await r.json()
    assert problem["type"].endswith("erasure-restricted")
    assert problem["context"]["reason"] == "ticket-issued"
    retention = DAY + timedelta(days=366)
    assert problem["context"]["possible_from"].startswith(
        (retention - timedelta(days=1)).isoformat()
    )  # 00:00 Paris = the eve, 22:00 or 23:00 UTC
    # no ticket, open lottery: erased whole, counted, recorded once
    r = await client.post(ERASURE, json=who(bodies[2], programme=P), headers=dpo(tokens))
    assert r.status == 200, await r.text()
    assert await store.client.hget(f"g:{{taj:olympic}}:candidates:{P}", people[2]) is None
    r = await client.get(f"{ADMIN}/candidates/{people[2]}", headers=op)
    assert r.status == 404
    after = (await (await client.get(ADMIN, headers=bearer(admin_token(
        tokens, "programme:central")))).json())["stats"]  # fmt: skip
    assert after["candidates"] == stats["candidates"] - 1
    r = await client.post(ACCESS, json=who(bodies[2]), headers=dpo(tokens))
    assert r.status == 404
    r = await client.post(ERASURE, json=who(bodies[2], programme=P), headers=dpo(tokens))
    assert r.status == 404
    # the lottery committed: the draw must stay verifiable
    r = await client.post(f"{ADMIN}/lotteries/l1/commit", headers=op)
    assert r.status == 200, await r.text()
    r = await client.post(ERASURE, json=who(bodies[0], programme=P), headers=dpo(tokens))
    assert r.status == 409
    assert (await r.json())["context"]["reason"] == "lottery-committed"
    erasures = [x for x in await records(store) if x["action"] == "privacy.erase"]
    assert [(x["object"], x["outcome"]) for x in erasures] == [(f"programme:{P}/candidate",
                                                                "erased")]  # fmt: skip


async def test_concurrent_erasures_of_one_candidacy_erase_it_once(
    client: Client, store: Store, tokens: Tokens
) -> None:
    s = await setup(client, tokens)
    body = who(s["bodies"][2], programme=P)
    answers = await asyncio.gather(
        *(client.post(ERASURE, json=body, headers=dpo(tokens)) for _ in range(20))
    )
    assert sorted(r.status for r in answers) == [200] + [404] * 19
    assert [x["action"] for x in await records(store)] == ["privacy.erase"]


async def test_scope_and_bad_bodies_are_refused_and_change_nothing(
    client: Client, store: Store, tokens: Tokens
) -> None:
    person = {"family_name": "Durand", "given_names": "Zoé", "birth_date": "2001-02-03"}
    for url, body in ((ACCESS, person), (ERASURE, {**person, "programme": P})):
        r = await client.post(url, json=body)
        assert r.status == 401
        r = await client.post(url, json=body, headers=operator(tokens, P))
        assert r.status == 403
        r = await client.post(url, json={**body, "nickname": "zz"}, headers=dpo(tokens))
        assert r.status == 422
        assert "nickname" in await r.text()
        r = await client.post(url, json={**body, "family_name": "--"}, headers=dpo(tokens))
        assert r.status == 422
        assert "family_name" in await r.text()
    r = await client.post(ERASURE, json=person, headers=dpo(tokens))
    assert r.status == 422
    assert "programme" in await r.text()
    assert await records(store) == []


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=8,
)
FIELDS = ("family_name", "given_names", "birth_date", "programme", "account")


@FUZZ
@hypothesis.given(
    url=st.sampled_from([ACCESS, ERASURE]),
    field=st.sampled_from(FIELDS),
    value=JSON,
    raw=st.binary(max_size=64),
)
async def test_hostile_bodies_answer_4xx_problems(
    client: Client, tokens: Tokens, url: str, field: str, value: Any, raw: bytes
) -> None:
    body = {"family_name": "Durand", "given_names": "Zoé", "birth_date": "2001-02-03",
            "programme": P, field: value}  # fmt: skip
    headers = {**dpo(tokens), "Content-Type": "application/json"}
    for data in (json.dumps(body).encode(), raw):
        r = await client.post(url, data=data, headers=headers)
        assert 400 <= r.status < 500, (r.status, await r.text())
        assert r.content_type == "application/problem+json"


async def cli(settings: Settings, tmp_path: Path, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = await cli_run(settings, tmp_path, *args)
    return code, out.getvalue()


async def test_the_cli_access_export_is_recorded(
    client: Client, store: Store, tokens: Tokens, settings: Settings, tmp_path: Path
) -> None:
    s = await setup(client, tokens)
    b = s["bodies"][1]
    args = ("privacy", "access", "--family", b["family_name"], "--given", b["given_names"])
    code, out = await cli(settings, tmp_path, *args, "--birth", b["birth_date"])
    assert code == 0
    [c] = json.loads(out)["candidacies"]
    assert c["name"] == f"{b['given_names']} {b['family_name']}"
    [rec] = await records(store)
    assert rec["action"] == "privacy.access"
    assert rec["actor"].startswith("cli:")
    code, _ = await cli(settings, tmp_path, *args, "--birth", "1950-01-01")
    assert code == 1
    assert len(await records(store)) == 1


async def keys_holding(store: Store, needles: list[str]) -> list[tuple[str, str]]:
    """Every (key, needle) of the games' keys (but its audit chain) whose name or content holds
    a needle."""
    found = []
    async for raw in store.client.scan_iter(match="g:{taj:olympic}:*"):
        key = raw.decode()
        if key == CHAIN:
            continue
        kind_raw: Any = await store.client.type(key)
        kind = kind_raw.decode()
        if kind == "hash":
            content: Any = await store.client.hgetall(key)
        elif kind == "stream":
            content = await store.client.xrange(key)
        elif kind == "list":
            content = await store.client.lrange(key, 0, -1)
        elif kind == "set":
            content = await store.client.smembers(key)
        else:
            content = await store.client.get(key)
        text = key + repr(content)
        found += [(key, n) for n in needles if n in text]
    return found


async def test_the_retention_purge_leaves_no_person_and_keeps_the_counts(
    client: Client, store: Store, tokens: Tokens, settings: Settings, tmp_path: Path
) -> None:
    s = await setup(client, tokens)
    people = s["people"]
    r = await client.post(f"{ADMIN}/designations", headers=operator(tokens, P),
                          json={"person": people[1], "session": "ATH-00", "category": "A",
                                "justification": "an injured volunteer"})  # fmt: skip
    assert r.status == 201, await r.text()
    names = [n for b in s["bodies"] for n in (b["family_name"], b["given_names"])]
    needles = [*people, *names, GUARDIAN, "acc-lead", "injured volunteer"]
    assert await keys_holding(store, needles)  # the test sees them before
    stats_key = f"g:{{taj:olympic}}:stats:{P}"
    stats = await store.client.hgetall(stats_key)
    # before the date: refused, nothing changed, no record
    code, _ = await cli(settings, tmp_path, "privacy", "purge", "--games", "olympic")
    assert code == 1
    assert await records(store) == []
    await set_retention(store, P, (date.today() - timedelta(days=2)).isoformat())
    code, out = await cli(settings, tmp_path, "privacy", "purge", "--games", "olympic",
                          "--batch", "2")  # fmt: skip
    assert code == 0, out
    report = json.loads(out)
    assert report["purged"][P] > 0
    assert await keys_holding(store, needles) == []
    assert await store.client.hgetall(stats_key) == stats
    purges = [x for x in await records(store) if x["action"] == "privacy.retention-purge"]
    assert report["batches"] >= 4  # at least one per phase, and one record for the run
    assert [(x["object"], x["outcome"]) for x in purges] == [(f"programme:{P}", "started")]
    # the register keeps its entry, without the person nor the justification
    register: Any = await store.client.xrange(f"g:{{taj:olympic}}:exceptions:{P}")
    [(_, entry)] = register
    assert set(entry) == {b"session", b"category", b"by", b"at", b"ticket", b"purged"}
    # run again: nothing left to purge, still fine
    code, out = await cli(settings, tmp_path, "privacy", "purge", "--games", "olympic")
    assert code == 0
    purges = [x for x in await records(store) if x["action"] == "privacy.retention-purge"]
    assert len(purges) == 2  # a run is an act: its own record


async def seed_sale_account(store: Store, account: str) -> None:
    """An account's traces in the public sale, written as the draw and shop scripts store them
    (the HTTP path to a confirmed purchase is the shop's tests' business): an entry in draw d1,
    a packs window of sale s1, a confirmed purchase of 2 seats, the first scanned."""
    c, d, s = store.client, DrawKeys("d1"), SaleKeys("s1")
    await c.sadd(DRAWS_INDEX, "d1")
    await c.hset(d.entries_of(account), account, "general:1700000000000000")
    await c.sadd(SALES_INDEX, "s1")
    await c.hset(s.windows("packs"), account, "1700000000000000:1700172800000000:d1:1")
    hold = {"account": account, "tag": "t", "items": [["ATH-01:A", 2, "ATH-01"]],
            "state": "confirmed", "tickets": 2, "packs": 0, "expires_us": 1700000600000000,
            "payment_reference": "pay-1", "confirmed_us": 1700000300000000}  # fmt: skip
    await c.hset(s.holds, "h1", json.dumps(hold))
    await c.sadd(s.bought(account), "h1")
    await c.hset(s.scans, "h1.1", "1700001000000000 gate-3")


async def test_access_by_account_reads_the_sale_and_notes_it_once(
    client: Client, store: Store, tokens: Tokens
) -> None:
    await seed_sale_account(store, "acc-buyer")
    r = await client.post(ACCESS, json={"account": "acc-buyer"}, headers=dpo(tokens))
    assert r.status == 200, await r.text()
    a = (await r.json())["account"]
    assert [(e["draw"], e["stratum"]) for e in a["entries"]] == [("d1", "general")]
    assert [(w["sale"], w["phase"], w["wave"]) for w in a["windows"]] == [("s1", "packs", "1")]
    [p] = a["purchases"]
    assert [t["id"] for t in p["tickets"]] == ["h1.1", "h1.2"]
    assert [t.get("scanned") for t in p["tickets"]] == ["1700001000000000 gate-3", None]
    notes: Any = await store.client.xrange(audit_chain(AUDIT_TAG))
    assert len(notes) == 1
    assert notes[0][1][b"action"] == b"privacy.access"
    assert b"acc-buyer" not in repr(notes).encode()
    r = await client.post(ACCESS, json={"account": "acc-nobody"}, headers=dpo(tokens))
    assert r.status == 404
    r = await client.post(ACCESS, json={"family_name": "Durand"}, headers=dpo(tokens))
    assert r.status == 422
    assert "given_names" in await r.text()
    r = await client.post(ACCESS, json={}, headers=dpo(tokens))
    assert r.status == 422
    assert "account" in await r.text()
    after: Any = await store.client.xrange(audit_chain(AUDIT_TAG))
    assert len(after) == 1
