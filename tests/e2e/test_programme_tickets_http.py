"""Designation and tickets of the State programme over HTTP (slice C of issue 14): an
operator's lottery (create, commit, run), two operators assigning the last tickets at once, the
beneficiary's commitment and nominative ticket, the gate's scan, withdrawal and reassignment,
designation without lottery, refusals. Seeding is store-level (tests/programme_seed_c.py)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from guichet import auth
from guichet.config import Settings
from guichet.programme import tickets
from guichet.programme.identity import NameBox, name_box
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys, audit_chain
from tests import programme_seed_c as seed
from tests.conftest import Backend, Client, Tokens, make_settings
from tests.e2e.programme_helpers import declared  # noqa: F401 (the fixture)
from tests.roundtrips import RoundTrips

pytestmark = pytest.mark.usefixtures("declared")

P, Q = "youth-75", "agents-13"
FUTURE = date.today() + timedelta(days=30)
ADMIN = "/v1/admin/programmes"


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(tmp_path, backend.redis_section, programme={
        "name_key_file": str(tmp_path / "name-key"),
        "pseudonym_secret_file": str(tmp_path / "pseudonym-secret")})  # fmt: skip


@pytest.fixture
def box(settings: Settings) -> NameBox:
    return name_box(settings.programme)


def bearer(
    tokens: Tokens, subject: str, scopes: list[str], programmes: list[str]
) -> dict[str, str]:
    token = auth.mint(tokens.key, issuer=tokens.sec.issuer, audience=tokens.sec.admin_audience,
                      subject=subject, ttl_s=600, scopes=scopes, programmes=programmes)  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


def operator(tokens: Tokens, subject: str = "op-1", programme: str = P) -> dict[str, str]:
    return bearer(tokens, subject, ["programme:operate"], [programme])


def person(n: int) -> str:
    return f"{n:064x}"


async def lottery_ready(client: Client, store: Store, tokens: Tokens, box: NameBox) -> Any:
    """30 named candidates, 10 tickets, the lottery created, committed, closed and run."""
    await seed.session(store, "ATH-01", FUTURE)
    await seed.programme(store, P)
    await seed.allocate(store, "ATH-01", "A", {P: 10})
    for n in range(30):
        await seed.candidate(store, P, person(n), "l1", name=f"Person {n}", box=box)
    closes = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = {"id": "l1", "session": "ATH-01", "category": "A", "closes_at": closes}
    r = await client.post(f"{ADMIN}/{P}/lotteries", json=body, headers=operator(tokens))
    assert r.status == 201, await r.text()
    r = await client.post(f"{ADMIN}/{P}/lotteries/l1/commit", headers=operator(tokens))
    committed = await r.json()
    assert r.status == 200
    assert len(committed["commitment"]) == 64
    await seed.close_lottery(store, P, "l1")
    r = await client.post(f"{ADMIN}/{P}/lotteries/l1/run", json={"beacon_text": "CAC40 close"},
                          headers=operator(tokens))  # fmt: skip
    assert r.status == 200, await r.text()
    transcript = await r.json()
    assert transcript["commitment"] == committed["commitment"]
    assert transcript["entries"] == 30
    return transcript


async def test_lottery_assign_commit_scan_withdraw(
    client: Client, store: Store, tokens: Tokens, box: NameBox
) -> None:
    await lottery_ready(client, store, tokens, box)
    ops = [operator(tokens, "op-1"), operator(tokens, "op-2")]

    async def assign(i: int) -> int:
        r = await client.post(f"{ADMIN}/{P}/lotteries/l1/assign", json={"max": 1},
                              headers=ops[i % 2])  # fmt: skip
        assert r.status == 200, await r.text()
        return int((await r.json())["assigned"])

    assert sum(await asyncio.gather(*(assign(i) for i in range(40)))) == 10
    assert await seed.invariant(store, [P]) == {"ATH-01:A": 0}
    codes = await seed.link_codes(store)
    assert len(codes) == 10
    first, second = sorted(codes)[:2]
    url = f"/v1/programmes/{P}/tickets/{first}"

    r = await client.get(url, headers={"X-Ticket-Code": codes[first]})
    assert (r.status, (await r.json()).get("payload")) == (200, None)  # not committed yet
    r = await client.post(f"{url}/commit", json={"charter_version": "c1", "attend": False,
                                                 "code": codes[first]})  # fmt: skip
    assert r.status == 422
    assert "attend" in await r.text()
    r = await client.post(f"{url}/commit", json={"charter_version": "c1", "attend": True,
                                                 "code": codes[second]})  # fmt: skip
    assert r.status == 404  # another ticket's code proves nothing
    r = await client.post(f"{url}/commit", json={"charter_version": "c1", "attend": True,
                                                 "code": codes[first]})  # fmt: skip
    assert r.status == 200, await r.text()
    ticket = await r.json()
    assert ticket["state"] == "committed"
    assert ticket["name"].startswith("Person ")
    claims = jwt.decode(ticket["payload"], options={"verify_signature": False})
    assert (claims["tid"], claims["prg"], claims["nam"]) == (first, P, ticket["name"])
    r = await client.get(url, params={"format": "svg"}, headers={"X-Ticket-Code": codes[first]})
    assert (r.status, r.content_type) == (200, "image/svg+xml")

    gate = {"Authorization": f"Bearer {tokens.admin('gates:scan')}"}
    scan = {"payload": ticket["payload"], "gate": "SDF-N3"}
    r = await client.post("/v1/admin/gates/scan", json=scan, headers=gate)
    assert r.status == 200, await r.text()
    assert (await r.json())["ticket"] == first
    r = await client.post("/v1/admin/gates/scan", json=scan, headers=gate)
    assert r.status == 409
    assert await seed.counts(store, "ATH-01:A", P) == {"pool": 0, "alloc": 0, "assigned": 9,
                                                       "used": 1}  # fmt: skip

    r = await client.post(f"/v1/programmes/{P}/tickets/{second}/withdraw",
                          json={"code": codes[second]})  # fmt: skip
    assert r.status == 200, await r.text()
    out = await r.json()
    assert out["outcome"] == "reassigned"
    assert out["reassigned_ticket"] in await seed.link_codes(store)
    r = await client.post(f"/v1/programmes/{P}/tickets/{second}/withdraw",
                          json={"code": codes[second]})  # fmt: skip
    assert r.status == 409
    assert (await r.json())["type"].endswith("ticket-withdrawn")
    assert await seed.invariant(store, [P]) == {"ATH-01:A": 0}


async def test_withdrawal_on_the_session_day_is_too_late(
    client: Client, store: Store, tokens: Tokens
) -> None:
    await seed.session(store, "ATH-01", date.today())
    await seed.programme(store, P)
    await seed.allocate(store, "ATH-01", "A", {P: 1})
    await seed.candidate(store, P, person(1))
    body = {"person": person(1), "session": "ATH-01", "category": "A",
            "justification": "replacement of an injured volunteer"}  # fmt: skip
    r = await client.post(f"{ADMIN}/{P}/designations", json=body, headers=operator(tokens))
    assert r.status == 201, await r.text()
    tid = (await r.json())["ticket"]
    r = await client.post(f"{ADMIN}/{P}/tickets/{tid}/withdraw", headers=operator(tokens))
    assert r.status == 409
    assert (await r.json())["type"].endswith("too-late")
    assert await seed.invariant(store, [P]) == {"ATH-01:A": 0}


async def test_double_benefit_names_the_other_programme_only_to_central(
    client: Client, store: Store, tokens: Tokens
) -> None:
    await seed.session(store, "ATH-01", FUTURE)
    for pid in (P, Q):
        await seed.programme(store, pid)
        await seed.candidate(store, pid, person(7))
    await seed.allocate(store, "ATH-01", "A", {P: 1, Q: 1})
    body = {"person": person(7), "session": "ATH-01", "category": "A",
            "justification": "a referee named by the league"}  # fmt: skip
    r = await client.post(f"{ADMIN}/{P}/designations", json=body, headers=operator(tokens))
    assert r.status == 201
    r = await client.post(f"{ADMIN}/{Q}/designations", json=body,
                          headers=operator(tokens, "op-q", Q))  # fmt: skip
    assert r.status == 409
    assert P not in await r.text()
    central = bearer(tokens, "dijop", ["programme:central"], [])
    r = await client.post(f"{ADMIN}/{Q}/designations", json=body, headers=central)
    assert r.status == 409
    assert (await r.json())["context"]["programme"] == P
    r = await client.post(f"{ADMIN}/{P}/designations", json=body,
                          headers=operator(tokens, "op-q", Q))  # fmt: skip
    assert r.status == 403  # not its programme
    r = await client.post(f"{ADMIN}/{Q}/designations", json={**body, "justification": "short"},
                          headers=operator(tokens, "op-q", Q))  # fmt: skip
    assert r.status == 422
    assert "justification" in await r.text()
    assert await seed.invariant(store, [P, Q]) == {"ATH-01:A": 0}


@pytest.mark.inprocess("counts the app's own Redis calls")
async def test_commit_and_withdraw_are_one_round_trip_each(
    client: Client, store: Store, tokens: Tokens, box: NameBox
) -> None:
    await lottery_ready(client, store, tokens, box)
    r = await client.post(f"{ADMIN}/{P}/lotteries/l1/assign", json={}, headers=operator(tokens))
    assert r.status == 200, await r.text()
    codes = await seed.link_codes(store)
    first, second = sorted(codes)[:2]
    base = f"/v1/programmes/{P}/tickets"
    trips = RoundTrips(tickets.SCRIPTS)
    with trips.active():
        r = await client.post(f"{base}/{first}/commit", json={
            "charter_version": "charte-1", "attend": True, "code": codes[first]})  # fmt: skip
        assert r.status == 200, await r.text()
        assert (await r.json())["name"].startswith("Person ")  # the reply needs no other read
        assert trips.trips == [("tickets_commit",)]
        trips.clear()
        r = await client.post(f"{base}/{second}/withdraw", json={"code": codes[second]})
        assert r.status == 200, await r.text()
        assert (await r.json())["outcome"] == "reassigned"
        assert trips.trips == [("tickets_withdraw",)]  # the eve's instant is in the session


async def test_an_operator_read_of_a_ticket_whose_name_is_gone_is_refused_unrecorded(
    client: Client, store: Store, tokens: Tokens, box: NameBox
) -> None:
    await seed.session(store, "ATH-01", FUTURE)
    await seed.programme(store, P)
    await seed.allocate(store, "ATH-01", "A", {P: 1})
    await seed.candidate(store, P, person(1), name="Person 1", box=box)
    body = {"person": person(1), "session": "ATH-01", "category": "A",
            "justification": "replacement of an injured volunteer"}  # fmt: skip
    r = await client.post(f"{ADMIN}/{P}/designations", json=body, headers=operator(tokens))
    assert r.status == 201, await r.text()
    tid = (await r.json())["ticket"]
    code = (await seed.link_codes(store))[tid]
    r = await client.post(f"/v1/programmes/{P}/tickets/{tid}/commit",
                          json={"charter_version": "c1", "attend": True, "code": code})  # fmt: skip
    assert r.status == 200, await r.text()
    k = ProgrammeKeys(seed.GAMES)
    chain = audit_chain(f"taj:{seed.GAMES}")
    r = await client.get(f"{ADMIN}/{P}/tickets/{tid}", headers=operator(tokens))
    assert (r.status, (await r.json())["name"]) == (200, "Person 1")  # a read: recorded
    read = await store.client.xlen(chain)
    record = await seed.candidate_record(store, P, person(1))
    await store.client.hset(k.candidates(P), person(1), json.dumps({**record, "name": None}))
    r = await client.get(f"{ADMIN}/{P}/tickets/{tid}", headers=operator(tokens))
    assert (r.status, (await r.json())["type"].rsplit("/", 1)[-1]) == (409, "name-missing")
    assert await store.client.xlen(chain) == read  # nothing was answered: nothing recorded
