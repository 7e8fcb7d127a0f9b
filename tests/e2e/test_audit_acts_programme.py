"""Every act of the State programme writes exactly one audit record in the games' chain
(``taj:<games>``), in the script that performs it; a refused act writes none; reads write none
except reads of a beneficiary's data (acts of access). And the conflict-of-interest
declarations (AFA, seed 002 §3.1) that every operator and central agent files before acting.

``ROUTES`` walks every ``/v1/admin/programme*`` route of the OpenAPI, in an order that builds
the state each needs (one pool, one programme, one lottery from creation to assignment, …)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from guichet.audit.record import GENESIS
from guichet.programme import lottery
from guichet.store.client import Store
from guichet.store.keys import PROGRAMMES_INDEX, ProgrammeKeys, audit_chain
from tests import programme_seed_c
from tests.conftest import Client, Tokens
from tests.e2e.audit_helpers import total_records
from tests.e2e.programme_helpers import (
    auditor,
    central,
    declare,
    declared,  # noqa: F401 (the fixture)
    operator,
    programme_body,
)
from tests.programme_seed_b import set_retention

pytestmark = pytest.mark.usefixtures("declared")

P = "youth-75"
GAMES = "olympic"
CHAIN = audit_chain(f"taj:{GAMES}")
ADMIN = f"/v1/admin/programmes/{P}"
DAY = date.today() + timedelta(days=30)  # the session: far enough for a withdrawal
CRITERIA = ["age-16-25", "resident"]
#: The plain personal data sent below: none of it may appear in any audit record.
FAMILY, GIVEN, GUARDIAN = "Quintavalle-Zorbaz", "Zéphyrine Anastasie", "Gaspard Tuteur"
MINOR_BIRTH = (DAY - timedelta(days=16 * 365)).isoformat()
ADULT_BIRTH = "1999-04-03"
PERSONAL = (FAMILY, GIVEN, GUARDIAN, "Octave", MINOR_BIRTH, ADULT_BIRTH)
Response = Any


def candidate(given: str, birth: str, lottery: str) -> dict[str, Any]:
    return {"family_name": FAMILY, "given_names": given, "birth_date": birth, "lottery": lottery,
            "criteria": CRITERIA,
            "consent": {"version": "charte-v1", "collected_at": "2024-02-01T10:00:00Z",
                        "collected_by": "mission-locale-75"}}  # fmt: skip


async def records(store: Store, chain: str = CHAIN) -> list[dict[str, str]]:
    raw: Any = await store.client.xrange(chain)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in raw]


@dataclass
class World:
    """The state the walk builds, and who acts."""

    client: Client
    tokens: Tokens
    store: Store
    person: str = ""  # the minor registered (then guardian, consent, lottery ticket)
    ticket: str = ""  # the ticket of the designation without lottery
    made: dict[str, Any] = field(default_factory=dict)

    @property
    def c(self) -> dict[str, str]:
        return central(self.tokens)

    @property
    def op(self) -> dict[str, str]:
        return operator(self.tokens, P)

    @property
    def undeclared_c(self) -> dict[str, str]:
        return central(self.tokens, subject="central-undeclared")

    @property
    def undeclared_op(self) -> dict[str, str]:
        return operator(self.tokens, P, subject="op-undeclared")


Call = Callable[[World], Awaitable[Response]]


async def _nothing(_w: World) -> None:
    return None


@dataclass(frozen=True)
class RouteCase:
    """One route: ``ok`` performs one successful call, ``refused`` one refused call (4xx);
    the chain grows by ``records`` (by the ok call, as ``actor`` with ``action``), 0 when
    refused. ``setup`` runs first, unmeasured."""

    method: str
    path: str  # the OpenAPI path template
    records: int
    action: str
    actor: str
    ok: Call
    refused: Call
    setup: Call = _nothing


def _pool_rows() -> list[dict[str, Any]]:
    return [{"games": GAMES, "session": "ATH-00", "date": DAY.isoformat(), "name": "Athletics",
             "category": "A", "quantity": 10}]  # fmt: skip


def _programme() -> dict[str, Any]:
    return programme_body(reclaim_on=date.today().isoformat(), criteria=CRITERIA,
                          retention_until=(DAY + timedelta(days=365)).isoformat())  # fmt: skip


def _allocation() -> dict[str, Any]:
    return {"items": [{"session": "ATH-00", "category": "A", "quantity": 5}]}


def _lottery(lottery: str) -> dict[str, Any]:
    closes = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    return {"id": lottery, "session": "ATH-00", "category": "A", "closes_at": closes}


async def _register(w: World) -> Response:
    resp = await w.client.post(f"{ADMIN}/candidates", headers=w.op,
                               json=candidate(GIVEN, MINOR_BIRTH, "l1"))  # fmt: skip
    if resp.status == 201:
        w.person = (await resp.json())["pseudonym"]
    return resp


async def _second_candidate(w: World) -> None:
    """An adult in a second lottery (open), for the designation without lottery."""
    resp = await w.client.post(f"{ADMIN}/lotteries", json=_lottery("l2"), headers=w.op)
    assert resp.status == 201, await resp.text()
    resp = await w.client.post(f"{ADMIN}/candidates", headers=w.op,
                               json=candidate("Octave", ADULT_BIRTH, "l2"))  # fmt: skip
    assert resp.status == 201, await resp.text()
    w.made["second"] = (await resp.json())["pseudonym"]


async def _designate(w: World) -> Response:
    body = {"person": w.made["second"], "session": "ATH-00", "category": "A",
            "justification": "a referee named by the league for this session"}  # fmt: skip
    resp = await w.client.post(f"{ADMIN}/designations", json=body, headers=w.op)
    if resp.status == 201:
        w.ticket = (await resp.json())["ticket"]
    return resp


async def _close(w: World) -> None:
    await programme_seed_c.close_lottery(w.store, P, "l1")


async def _retention_over(w: World) -> None:
    await set_retention(w.store, P, (date.today() - timedelta(days=2)).isoformat())


_G = {"name": GUARDIAN, "relationship": "parent", "consented_at": "2024-02-02T09:00:00+01:00"}
_DECL = "/v1/admin/programme/declaration"
_CAND = "/v1/admin/programmes/{programme}/candidates/{pseudonym}"
_LOT = "/v1/admin/programmes/{programme}/lotteries/{lottery}"
_TICKET = "/v1/admin/programmes/{programme}/tickets/{ticket}"

ROUTES: list[RouteCase] = [
    RouteCase("PUT", _DECL, 1, "programme.declare", "op-1",
              lambda w: w.client.put(_DECL, json={"games": GAMES, "conflicts": []}, headers=w.op),
              lambda w: w.client.put(_DECL, json={"games": "nope", "conflicts": []},
                                     headers=w.op)),
    RouteCase("GET", "/v1/admin/programme/declarations", 0, "", "",
              lambda w: w.client.get(f"/v1/admin/programme/declarations?games={GAMES}",
                                     headers=auditor(w.tokens)),
              lambda w: w.client.get(f"/v1/admin/programme/declarations?games={GAMES}",
                                     headers=w.op)),
    RouteCase("PUT", "/v1/admin/programme/pool", 1, "programme.pool-load", "central-1",
              lambda w: w.client.put("/v1/admin/programme/pool", json={"tickets": _pool_rows()},
                                     headers=w.c),
              lambda w: w.client.put("/v1/admin/programme/pool", json={"tickets": _pool_rows()},
                                     headers=w.undeclared_c)),
    RouteCase("GET", "/v1/admin/programme/pool", 0, "", "",
              lambda w: w.client.get(f"/v1/admin/programme/pool?games={GAMES}", headers=w.c),
              lambda w: w.client.get(f"/v1/admin/programme/pool?games={GAMES}")),
    RouteCase("GET", "/v1/admin/programme/audit", 0, "", "",
              lambda w: w.client.get(f"/v1/admin/programme/audit?games={GAMES}", headers=w.c),
              lambda w: w.client.get(f"/v1/admin/programme/audit?games={GAMES}", headers=w.op)),
    RouteCase("PUT", "/v1/admin/programmes/{programme}", 1, "programme.put", "central-1",
              lambda w: w.client.put(ADMIN, json=_programme(), headers=w.c),
              lambda w: w.client.put(ADMIN, json=_programme(), headers=w.undeclared_c)),
    RouteCase("GET", "/v1/admin/programmes/{programme}", 0, "", "",
              lambda w: w.client.get(ADMIN, headers=auditor(w.tokens)),
              lambda w: w.client.get(ADMIN, headers=operator(w.tokens, "other"))),
    RouteCase("POST", "/v1/admin/programmes/{programme}/allocations", 1, "programme.allocate",
              "central-1",
              lambda w: w.client.post(f"{ADMIN}/allocations", json=_allocation(), headers=w.c),
              lambda w: w.client.post(f"{ADMIN}/allocations", json=_allocation(),
                                      headers=w.undeclared_c)),
    RouteCase("POST", "/v1/admin/programmes/{programme}/lotteries", 1,
              "programme.lottery-create", "op-1",
              lambda w: w.client.post(f"{ADMIN}/lotteries", json=_lottery("l1"), headers=w.op),
              lambda w: w.client.post(f"{ADMIN}/lotteries", json=_lottery("l9"),
                                      headers=w.undeclared_op)),
    RouteCase("GET", _LOT, 0, "", "",
              lambda w: w.client.get(f"{ADMIN}/lotteries/l1", headers=w.op),
              lambda w: w.client.get(f"{ADMIN}/lotteries/nope", headers=w.op)),
    RouteCase("POST", _LOT + "/commit", 1, "programme.lottery-commit", "op-1",
              lambda w: w.client.post(f"{ADMIN}/lotteries/l1/commit", headers=w.op),
              lambda w: w.client.post(f"{ADMIN}/lotteries/l1/commit", headers=w.undeclared_op)),
    RouteCase("POST", "/v1/admin/programmes/{programme}/candidates", 1, "programme.register",
              "op-1", _register,
              lambda w: w.client.post(f"{ADMIN}/candidates", headers=w.undeclared_op,
                                      json=candidate("Octave", ADULT_BIRTH, "l1"))),
    RouteCase("GET", _CAND, 1, "programme.candidate-read", "op-1",
              lambda w: w.client.get(f"{ADMIN}/candidates/{w.person}", headers=w.op),
              lambda w: w.client.get(f"{ADMIN}/candidates/{'0' * 64}", headers=w.op)),
    RouteCase("PUT", _CAND + "/guardian", 1, "programme.guardian", "op-1",
              lambda w: w.client.put(f"{ADMIN}/candidates/{w.person}/guardian", json=_G,
                                     headers=w.op),
              lambda w: w.client.put(f"{ADMIN}/candidates/{w.person}/guardian", json=_G,
                                     headers=w.op)),  # recorded already: 409
    RouteCase("PUT", _CAND + "/reuse-consent", 1, "programme.reuse-consent", "op-1",
              lambda w: w.client.put(f"{ADMIN}/candidates/{w.person}/reuse-consent",
                                     json={"version": "reuse-v1"}, headers=w.op),
              lambda w: w.client.put(f"{ADMIN}/candidates/{w.person}/reuse-consent",
                                     json={"version": "reuse-v1"}, headers=w.undeclared_op)),
    RouteCase("DELETE", _CAND + "/reuse-consent", 1, "programme.reuse-consent", "op-1",
              lambda w: w.client.delete(f"{ADMIN}/candidates/{w.person}/reuse-consent",
                                        headers=w.op),
              lambda w: w.client.delete(f"{ADMIN}/candidates/{w.person}/reuse-consent",
                                        headers=w.undeclared_op)),
    RouteCase("GET", "/v1/admin/programmes/{programme}/reuse-consents", 1,
              "programme.reuse-consents-read", "op-1",
              lambda w: w.client.get(f"{ADMIN}/reuse-consents", headers=w.op),
              lambda w: w.client.get(f"{ADMIN}/reuse-consents", headers=w.undeclared_op)),
    RouteCase("POST", "/v1/admin/programmes/{programme}/groups", 1, "programme.group", "op-1",
              lambda w: w.client.post(f"{ADMIN}/groups", headers=w.op,
                                      json={"id": "club-a", "leader": "leader-a"}),
              lambda w: w.client.post(f"{ADMIN}/groups", headers=w.undeclared_op,
                                      json={"id": "club-b", "leader": "leader-b"})),
    RouteCase("PUT", "/v1/admin/programmes/{programme}/groups/{group}/mobility", 1,
              "programme.mobility", "op-1",
              lambda w: w.client.put(f"{ADMIN}/groups/club-a/mobility", json={"count": 2},
                                     headers=w.op),
              lambda w: w.client.put(f"{ADMIN}/groups/club-a/mobility", json={"count": 2},
                                     headers=w.undeclared_op)),
    RouteCase("POST", _LOT + "/run", 1, "programme.lottery-run", "op-1",
              lambda w: w.client.post(f"{ADMIN}/lotteries/l1/run", headers=w.op,
                                      json={"beacon_text": "the beacon"}),
              # (a lottery that ran answers its transcript, public, to its operators: the
              # refusal here is a bad body)
              lambda w: w.client.post(f"{ADMIN}/lotteries/l1/run", headers=w.op,
                                      json={"beacon": "the beacon"}),
              setup=_close),
    RouteCase("POST", _LOT + "/assign", 1, "programme.lottery-assign", "op-1",
              lambda w: w.client.post(f"{ADMIN}/lotteries/l1/assign", json={}, headers=w.op),
              lambda w: w.client.post(f"{ADMIN}/lotteries/l1/assign", json={},
                                      headers=w.undeclared_op)),
    RouteCase("POST", "/v1/admin/programmes/{programme}/designations", 1,
              "programme.designate", "op-1", _designate,
              lambda w: w.client.post(f"{ADMIN}/designations", headers=w.undeclared_op, json={
                  "person": w.made["second"], "session": "ATH-00", "category": "A",
                  "justification": "a referee named by the league for this session"}),
              setup=_second_candidate),
    RouteCase("GET", _TICKET, 1, "programme.ticket-read", "op-1",
              lambda w: w.client.get(f"{ADMIN}/tickets/{w.ticket}", headers=w.op),
              lambda w: w.client.get(f"{ADMIN}/tickets/{w.ticket}", headers=w.undeclared_op)),
    RouteCase("POST", _TICKET + "/withdraw", 1, "programme.withdraw", "op-1",
              lambda w: w.client.post(f"{ADMIN}/tickets/{w.ticket}/withdraw", headers=w.op),
              lambda w: w.client.post(f"{ADMIN}/tickets/{w.ticket}/withdraw",
                                      headers=w.undeclared_op)),
    RouteCase("POST", "/v1/admin/programmes/{programme}/purge", 1, "programme.purge",
              "central-1",
              lambda w: w.client.post(f"{ADMIN}/purge", headers=w.c),
              lambda w: w.client.post(f"{ADMIN}/purge", headers=w.undeclared_c),
              setup=_retention_over),
    RouteCase("POST", "/v1/admin/programme/reclaim", 1, "programme.reclaim", "central-1",
              lambda w: w.client.post("/v1/admin/programme/reclaim", json={"games": GAMES},
                                      headers=w.c),
              lambda w: w.client.post("/v1/admin/programme/reclaim", json={"games": GAMES},
                                      headers=w.undeclared_c)),
]  # fmt: skip


async def test_the_table_covers_every_admin_programme_route_of_the_openapi(
    client: Client,
) -> None:
    doc = await (await client.get("/openapi.json")).json()
    routes = {(m.upper(), path) for path, ops in doc["paths"].items()
              if path.startswith("/v1/admin/programme") for m in ops}  # fmt: skip
    assert {(r.method, r.path) for r in ROUTES} == routes


async def test_every_programme_act_writes_exactly_one_record_and_a_refusal_none(
    client: Client, tokens: Tokens, store: Store
) -> None:
    w = World(client, tokens, store)
    for case in ROUTES:
        name = f"{case.method} {case.path}"
        await case.setup(w)
        before = await records(store)
        everywhere = await total_records(store)
        ok = await case.ok(w)
        assert 200 <= ok.status < 300, (name, ok.status, await ok.text())
        grown = (await records(store))[len(before) :]
        assert len(grown) == case.records, (name, grown)
        assert await total_records(store) == everywhere + case.records, name  # every chain
        for r in grown:
            assert (r["actor"], r["action"]) == (case.actor, case.action), (name, r)
        after, everywhere = await records(store), await total_records(store)
        refused = await case.refused(w)
        assert 400 <= refused.status < 500, (name, refused.status, await refused.text())
        assert await total_records(store) == everywhere, name
        assert refused.content_type == "application/problem+json", name
        assert await records(store) == after, name
    chain = await records(store)
    assert [int(r["seq"]) for r in chain] == list(range(1, len(chain) + 1))
    assert chain[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(chain))
    text = json.dumps(chain, ensure_ascii=False)
    for plain in PERSONAL:
        assert plain not in text, plain
    assert w.person not in text  # no pseudonym in an object either


# --- declarations ------------------------------------------------------------------------------


async def _problem(resp: Response, status: int, slug: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body: dict[str, Any] = await resp.json()
    assert body["type"].endswith("/" + slug), body
    return body


async def _programme_ready(client: Client, tokens: Tokens) -> None:
    resp = await client.put("/v1/admin/programme/pool", json={"tickets": _pool_rows()},
                            headers=central(tokens))  # fmt: skip
    assert resp.status == 200, await resp.text()
    resp = await client.put(ADMIN, json=_programme(), headers=central(tokens))
    assert resp.status == 201, await resp.text()
    resp = await client.post(f"{ADMIN}/allocations", json=_allocation(), headers=central(tokens))
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"{ADMIN}/lotteries", json=_lottery("l1"), headers=operator(tokens, P))
    assert resp.status == 201, await resp.text()


async def test_an_act_without_a_current_declaration_is_refused_and_changes_nothing(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await _programme_ready(client, tokens)
    who = operator(tokens, P, subject="op-new")
    body = candidate(GIVEN, ADULT_BIRTH, "l1")
    before = await records(store)
    resp = await client.post(f"{ADMIN}/candidates", json=body, headers=who)
    problem = await _problem(resp, 403, "declaration-required")
    assert problem["context"]["declaration"] == {"subject": "op-new", "games": GAMES}
    assert await records(store) == before
    view = await (await client.get(ADMIN, headers=central(tokens))).json()
    assert view["stats"].get("candidates", 0) == 0
    filed = await declare(client, who)
    assert (filed["subject"], filed["conflicts"]) == ("op-new", [])
    resp = await client.post(f"{ADMIN}/candidates", json=body, headers=who)
    assert resp.status == 201, await resp.text()
    listed = await client.get(f"/v1/admin/programme/declarations?games={GAMES}",
                              headers=auditor(tokens))  # fmt: skip
    subjects = [d["subject"] for d in (await listed.json())["declarations"]]
    assert "op-new" in subjects
    other_games = await client.get("/v1/admin/programme/declarations?games=paralympic",
                                   headers=central(tokens))  # fmt: skip
    assert "op-new" not in [d["subject"] for d in (await other_games.json())["declarations"]]


async def test_a_declared_conflict_bars_acts_on_that_programme_or_person(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await _programme_ready(client, tokens)
    op = operator(tokens, P)
    registered = []
    for given in ("Octave", "Ulysse"):
        resp = await client.post(f"{ADMIN}/candidates", json=candidate(given, ADULT_BIRTH, "l1"),
                                 headers=op)  # fmt: skip
        assert resp.status == 201, await resp.text()
        registered.append((await resp.json())["pseudonym"])
    relative, stranger = registered
    # op-1 declares a conflict with one person: acts on that person are barred, not the others
    await declare(client, op, conflicts=[{"pseudonym": relative}])
    before = await records(store)
    resp = await client.put(f"{ADMIN}/candidates/{relative}/reuse-consent",
                            json={"version": "reuse-v1"}, headers=op)  # fmt: skip
    await _problem(resp, 403, "declared-conflict")
    resp = await client.get(f"{ADMIN}/candidates/{relative}", headers=op)
    await _problem(resp, 403, "declared-conflict")
    body = {"person": relative, "session": "ATH-00", "category": "A",
            "justification": "a referee named by the league for this session"}  # fmt: skip
    await _problem(await client.post(f"{ADMIN}/designations", json=body, headers=op), 403,
                   "declared-conflict")  # fmt: skip
    assert await records(store) == before
    resp = await client.put(f"{ADMIN}/candidates/{stranger}/reuse-consent",
                            json={"version": "reuse-v1"}, headers=op)  # fmt: skip
    assert resp.status == 200, await resp.text()
    # the lottery is not barred: its order is chance, nobody's choice
    assert (await client.post(f"{ADMIN}/lotteries/l1/commit", headers=op)).status == 200
    # a conflict with the programme bars every act on it; refiling replaces the declaration
    await declare(client, op, conflicts=[{"programme": P}])
    resp = await client.put(f"{ADMIN}/candidates/{relative}/reuse-consent",
                            json={"version": "reuse-v1"}, headers=op)  # fmt: skip
    problem = await _problem(resp, 403, "declared-conflict")
    assert problem["context"]["conflict"] == "programme"
    await declare(client, op)
    resp = await client.put(f"{ADMIN}/candidates/{relative}/reuse-consent",
                            json={"version": "reuse-v1"}, headers=op)  # fmt: skip
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(
    "body",
    [
        {"games": "olympic", "conflicts": [{}]},
        {"games": "olympic", "conflicts": [{"programme": "p", "pseudonym": "0" * 64}]},
        {"games": "olympic", "conflicts": [{"pseudonym": "not-hex"}]},
        {"games": "olympic"},
        {"conflicts": []},
    ],
)
async def test_a_bad_declaration_is_refused_naming_its_field(
    client: Client, tokens: Tokens, store: Store, body: dict[str, Any]
) -> None:
    resp = await client.put(_DECL, json=body, headers=operator(tokens, P, subject="op-x"))
    await _problem(resp, 422, "validation")
    assert not await store.client.hexists(f"g:{{taj:{GAMES}}}:declarations", "op-x")


async def test_thirty_concurrent_registrations_write_thirty_contiguous_records(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await _programme_ready(client, tokens)
    before = len(await records(store))
    op = operator(tokens, P)
    answers = await asyncio.gather(*(
        client.post(f"{ADMIN}/candidates", headers=op,
                    json=candidate(f"Person {n:02d}", ADULT_BIRTH, "l1"))
        for n in range(30)
    ))  # fmt: skip
    assert [a.status for a in answers] == [201] * 30
    chain = await records(store)
    new = chain[before:]
    assert [r["action"] for r in new] == ["programme.register"] * 30
    assert [int(r["seq"]) for r in chain] == list(range(1, len(chain) + 1))
    assert all(b["prev"] == a["hash"] for a, b in itertools.pairwise(chain))


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["games", "conflicts", "programme", "pseudonym", "x"]), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@hypothesis.settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(
    body=st.one_of(
        st.binary(max_size=120),
        _JSONISH.map(lambda v: json.dumps(v).encode()),
        st.lists(st.one_of(
            st.builds(lambda p: {"programme": p}, st.text(max_size=50)),
            st.builds(lambda p: {"pseudonym": p}, st.text(alphabet="0123456789abcdefg",
                                                          min_size=63, max_size=65)),
        ), max_size=5).map(lambda c: json.dumps({"games": "olympic", "conflicts": c}).encode()),
    )
)  # fmt: skip
async def test_any_declaration_body_is_filed_or_refused_never_a_5xx(
    client: Client, tokens: Tokens, body: bytes
) -> None:
    resp = await client.put(_DECL, data=body, headers={
        **operator(tokens, P, subject="op-fuzz"), "Content-Type": "application/json"})  # fmt: skip
    assert resp.status in (200, 400, 422), await resp.text()
    if resp.status != 200:
        assert resp.content_type == "application/problem+json"


async def test_an_undeclared_operator_cannot_run_a_lottery(
    client: Client, tokens: Tokens, store: Store
) -> None:
    """The run's check is in the script that makes it effective (lottery_finish.lua)."""
    await _programme_ready(client, tokens)
    assert (await client.post(f"{ADMIN}/lotteries/l1/commit", headers=operator(tokens, P))).ok
    await programme_seed_c.close_lottery(store, P, "l1")
    who = operator(tokens, P, subject="op-late")
    resp = await client.post(f"{ADMIN}/lotteries/l1/run", json={"beacon_text": "b"}, headers=who)
    await _problem(resp, 403, "declaration-required")
    shown = await (await client.get(f"{ADMIN}/lotteries/l1", headers=operator(tokens, P))).json()
    assert shown["state"] == "committed"


async def test_a_lottery_run_stopped_after_its_first_script_changed_nothing(
    client: Client, tokens: Tokens, store: Store
) -> None:
    """lottery_begin.lua only reads: a run stopped after it (then the ranking, in Python) left
    no partial run to record; lottery_finish.lua changes the state and records at once."""
    await _programme_ready(client, tokens)
    assert (await client.post(f"{ADMIN}/lotteries/l1/commit", headers=operator(tokens, P))).ok
    await programme_seed_c.close_lottery(store, P, "l1")
    key = ProgrammeKeys(GAMES).lottery(P, "l1")
    before, chain = await store.client.hgetall(key), await records(store)
    code, _now = await store.scripts(lottery.BEGIN, [key], [])
    assert code == b"ok"
    assert (await store.client.hgetall(key), await records(store)) == (before, chain)
    resp = await client.post(f"{ADMIN}/lotteries/l1/run", json={"beacon_text": "b"},
                             headers=operator(tokens, P))  # fmt: skip
    assert resp.status == 200, await resp.text()
    new = (await records(store))[len(chain) :]
    assert [(r["action"], r["outcome"]) for r in new] == [("programme.lottery-run", "run")]


async def test_a_pool_file_of_both_games_by_an_agent_declared_for_one_loads_nothing(
    client: Client, tokens: Tokens, store: Store
) -> None:
    agent = central(tokens, subject="central-9")
    await declare(client, agent, "olympic")  # not for paralympic
    rows = [*_pool_rows(), {**_pool_rows()[0], "games": "paralympic", "session": "PARA-00"}]
    chains = [audit_chain("taj:olympic"), audit_chain("taj:paralympic")]
    before = [await records(store, c) for c in chains]
    resp = await client.put("/v1/admin/programme/pool", json={"tickets": rows}, headers=agent)
    problem = await _problem(resp, 403, "declaration-required")
    assert problem["context"]["declaration"]["games"] == "paralympic"
    assert [await records(store, c) for c in chains] == before
    for games in ("olympic", "paralympic"):
        view = await client.get(f"/v1/admin/programme/pool?games={games}", headers=central(tokens))
        assert (await view.json())["items"] == []
    await declare(client, agent, "paralympic")  # now declared for both: the same file loads
    resp = await client.put("/v1/admin/programme/pool", json={"tickets": rows}, headers=agent)
    assert resp.status == 200, await resp.text()


async def test_a_reclaim_barred_for_one_programme_reclaims_none(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await _programme_ready(client, tokens)  # youth-75, reclaimable today
    later = "zz-agents"  # reclaimed after youth-75 (programmes go in order)
    resp = await client.put(f"/v1/admin/programmes/{later}", headers=central(tokens),
                            json={**_programme(), "public": "agents"})  # fmt: skip
    assert resp.status == 201, await resp.text()
    resp = await client.post(f"/v1/admin/programmes/{later}/allocations", json=_allocation(),
                             headers=central(tokens))  # fmt: skip
    assert resp.status == 200, await resp.text()
    agent = central(tokens, subject="central-9")
    await declare(client, agent, conflicts=[{"programme": later}])
    before = await records(store)
    pool_before = await (await client.get(ADMIN, headers=central(tokens))).json()
    resp = await client.post("/v1/admin/programme/reclaim", json={"games": GAMES}, headers=agent)
    problem = await _problem(resp, 403, "declared-conflict")
    assert problem["context"]["programme"] == later
    assert await records(store) == before
    assert await (await client.get(ADMIN, headers=central(tokens))).json() == pool_before
    resp = await client.post("/v1/admin/programme/reclaim", json={"games": GAMES},
                             headers=central(tokens))  # fmt: skip
    assert resp.status == 200, await resp.text()
    outcomes = {p["programme"]: p["outcome"] for p in (await resp.json())["programmes"]}
    assert outcomes == {P: "reclaimed", later: "reclaimed"}


async def test_a_refused_new_programme_does_not_claim_its_id(
    client: Client, tokens: Tokens, store: Store
) -> None:
    """An undeclared agent's PUT of a new programme changes nothing, not even the id's claim
    in the index: a declared agent then creates it for the other games."""
    resp = await client.put("/v1/admin/programmes/fresh-1", headers=central(
        tokens, subject="central-undeclared"), json=programme_body(games="paralympic"))  # fmt: skip
    await _problem(resp, 403, "declaration-required")
    assert await store.client.hget(PROGRAMMES_INDEX, "fresh-1") is None
    resp = await client.put("/v1/admin/programmes/fresh-1", headers=central(tokens),
                            json=programme_body(games="olympic"))  # fmt: skip
    assert resp.status == 201, await resp.text()
