"""Every admin route of rooms, draws, sales and gates against the audit log (issue 15): a
successful act appends exactly one record to its object's chain, with the token's subject as
actor and no body content; a refused act and a read append none; records chain by hash."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from guichet.audit.record import GENESIS, Record, from_stream, record_hash
from guichet.config import Settings
from guichet.programme.identity import NameBox, name_box
from guichet.store.client import Store
from guichet.store.keys import audit_chain
from tests import programme_seed_c as seed_c
from tests.conftest import Backend, Client, Tokens, make_settings
from tests.e2e.audit_helpers import total_records
from tests.e2e.programme_helpers import declare, operator
from tests.e2e.room_helpers import eventually
from tests.e2e.room_helpers import spec as room_spec
from tests.e2e.test_draw_http import spec as draw_spec
from tests.e2e.test_etickets import buy, my_tickets
from tests.e2e.test_shop_http import SALE, catalogue, pack, setup_sale

ROOM = "r1"
DRAW = "d1"
PROGRAMME = "youth-75"
PERSON = f"{1:064x}"  # a beneficiary's pseudonym
SECRET = "https://secret-target.example/do-not-log"  # body content no record may hold


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(tmp_path, backend.redis_section, shop={"refresh_interval_s": 0.05})


@pytest.fixture
def box(settings: Settings) -> NameBox:
    return name_box(settings.programme)


@dataclass
class Ctx:
    client: Client
    tokens: Tokens
    store: Store
    state: dict[str, Any]

    def admin(self, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.admin(*scopes)}"}


Call = Callable[[Ctx], Awaitable[aiohttp.ClientResponse]]


async def nothing(ctx: Ctx) -> None:
    return None


async def a_room(ctx: Ctx) -> None:
    resp = await ctx.client.put(f"/v1/admin/rooms/{ROOM}", json=room_spec(target_url=SECRET),
                                headers=ctx.admin("rooms:write"))  # fmt: skip
    assert resp.status == 201, await resp.text()


async def a_session(ctx: Ctx) -> None:
    """A room with an admitted session (of "fan"): the protected site revokes it."""
    await a_room(ctx)
    fan = {"Authorization": f"Bearer {ctx.tokens.account('fan')}"}
    resp = await ctx.client.post(f"/v1/rooms/{ROOM}/join", headers=fan)
    fan["X-Queue-Ticket"] = (await resp.json())["ticket"]

    async def admit() -> bool | None:  # None until the pacer has called the number
        return (await ctx.client.post(f"/v1/rooms/{ROOM}/admit", headers=fan)).status == 200 or None

    await eventually(admit, "fan admitted")


async def a_sale(ctx: Ctx) -> None:
    resp = await ctx.client.put(f"/v1/admin/sales/{SALE}", json={},
                                headers=ctx.admin("sales:write"))  # fmt: skip
    assert resp.status == 201, await resp.text()


async def a_ticket(ctx: Ctx) -> None:
    await setup_sale(ctx.client, ctx.tokens)
    await buy(ctx.client, ctx.tokens, ctx.store, "fan", {"packs": [pack(1, 2, 3)]})
    ctx.state["payload"] = (await my_tickets(ctx.client, ctx.tokens, "fan"))[0]["payload"]


async def a_programme_ticket(ctx: Ctx) -> None:
    """A State programme's ticket, designated by a (declared) operator and committed by its
    beneficiary: the gate scans it as it scans a sale's (issue 15 review, item 1)."""
    await seed_c.session(ctx.store, "ATH-01", date.today() + timedelta(days=30))
    await seed_c.programme(ctx.store, PROGRAMME)
    await seed_c.allocate(ctx.store, "ATH-01", "A", {PROGRAMME: 1})
    await seed_c.candidate(ctx.store, PROGRAMME, PERSON, name="Person One", box=ctx.state["box"])
    op = operator(ctx.tokens, PROGRAMME)
    await declare(ctx.client, op)
    body = {"person": PERSON, "session": "ATH-01", "category": "A",
            "justification": "a referee named by the league for this session"}  # fmt: skip
    resp = await ctx.client.post(f"/v1/admin/programmes/{PROGRAMME}/designations", json=body,
                                 headers=op)  # fmt: skip
    assert resp.status == 201, await resp.text()
    ticket = (await resp.json())["ticket"]
    code = (await seed_c.link_codes(ctx.store))[ticket]
    resp = await ctx.client.post(
        f"/v1/programmes/{PROGRAMME}/tickets/{ticket}/commit",
        json={"charter_version": "c1", "attend": True, "code": code},
    )
    assert resp.status == 200, await resp.text()
    ctx.state["payload"] = (await resp.json())["payload"]
    ctx.state["object"] = f"programme:{PROGRAMME}/ticket:{ticket}"


def scan(ctx: Ctx) -> Awaitable[aiohttp.ClientResponse]:
    body = {"payload": ctx.state["payload"], "gate": "SDF-N3"}
    return ctx.client.post("/v1/admin/gates/scan", json=body, headers=ctx.admin("gates:scan"))


@dataclass(frozen=True)
class RouteCase:
    """One admin route: a successful and a refused call, after ``prepare``; ``action`` is the
    record a success writes in the chain ``chain`` (None: a read, which writes none), about
    ``object`` (None: the one ``prepare`` left in ``state["object"]``)."""

    method: str
    path: str  # the OpenAPI path template
    chain: str
    action: str | None
    object: str | None
    prepare: Callable[[Ctx], Awaitable[None]]
    ok: Call
    refused: Call


R, W = "rooms:read", "rooms:write"
ROUTES: list[RouteCase] = [
    RouteCase("get", "/v1/admin/rooms", f"room:{ROOM}", None, None, a_room,
              lambda c: c.client.get("/v1/admin/rooms", headers=c.admin(R)),
              lambda c: c.client.get("/v1/admin/rooms", headers=c.admin(W))),
    RouteCase("get", "/v1/admin/rooms/{room}", f"room:{ROOM}", None, None, a_room,
              lambda c: c.client.get(f"/v1/admin/rooms/{ROOM}", headers=c.admin(R)),
              lambda c: c.client.get("/v1/admin/rooms/nope", headers=c.admin(R))),
    RouteCase("put", "/v1/admin/rooms/{room}", f"room:{ROOM}", "room.put", f"room:{ROOM}",
              nothing,
              lambda c: c.client.put(f"/v1/admin/rooms/{ROOM}",
                                     json=room_spec(target_url=SECRET), headers=c.admin(W)),
              lambda c: c.client.put(f"/v1/admin/rooms/{ROOM}",
                                     json=room_spec(rate_per_s=-1), headers=c.admin(W))),
    RouteCase("patch", "/v1/admin/rooms/{room}", f"room:{ROOM}", "room.patch", f"room:{ROOM}",
              a_room,
              lambda c: c.client.patch(f"/v1/admin/rooms/{ROOM}", json={"rate_per_s": 5},
                                       headers=c.admin(W)),
              # refused by configure.lua itself ('unknown'), not before it: no record
              lambda c: c.client.patch("/v1/admin/rooms/nope", json={"rate_per_s": 5},
                                       headers=c.admin(W))),
    RouteCase("post", "/v1/admin/rooms/{room}/pause", f"room:{ROOM}", "room.pause",
              f"room:{ROOM}", a_room,
              lambda c: c.client.post(f"/v1/admin/rooms/{ROOM}/pause", headers=c.admin(W)),
              lambda c: c.client.post(f"/v1/admin/rooms/{ROOM}/pause", headers=c.admin(R))),
    RouteCase("post", "/v1/admin/rooms/{room}/resume", f"room:{ROOM}", "room.resume",
              f"room:{ROOM}", a_room,
              lambda c: c.client.post(f"/v1/admin/rooms/{ROOM}/resume", headers=c.admin(W)),
              lambda c: c.client.post(f"/v1/admin/rooms/{ROOM}/resume", headers=c.admin(R))),
    RouteCase("put", "/v1/admin/rooms/{room}/stock", f"room:{ROOM}", "room.stock",
              f"room:{ROOM}", a_room,
              lambda c: c.client.put(f"/v1/admin/rooms/{ROOM}/stock", json={"remaining": 0.5},
                                     headers=c.admin(W)),
              lambda c: c.client.put(f"/v1/admin/rooms/{ROOM}/stock", json={"remaining": 2},
                                     headers=c.admin(W))),
    # The protected site's revocation: the object is the room, never the visitor; a refusal
    # (the scope rooms:write does not imply rooms:revoke) writes nothing.
    RouteCase("post", "/v1/rooms/{room}/revoke", f"room:{ROOM}", "room.revoke",
              f"room:{ROOM}", a_session,
              lambda c: c.client.post(f"/v1/rooms/{ROOM}/revoke", headers=c.admin("rooms:revoke"),
                                      json={"account": "fan", "reason": "misbehaved"}),
              lambda c: c.client.post(f"/v1/rooms/{ROOM}/revoke", headers=c.admin(W),
                                      json={"account": "fan", "reason": "misbehaved"})),
    RouteCase("put", "/v1/admin/draws/{draw}", f"draw:{DRAW}", "draw.put", f"draw:{DRAW}",
              nothing,
              lambda c: c.client.put(f"/v1/admin/draws/{DRAW}", json=draw_spec(sale=SALE),
                                     headers=c.admin("draws:write")),
              lambda c: c.client.put(f"/v1/admin/draws/{DRAW}", json={"strata": "x"},
                                     headers=c.admin("draws:write"))),
    RouteCase("put", "/v1/admin/sales/{sale}", f"sale:{SALE}", "sale.put", f"sale:{SALE}",
              nothing,
              lambda c: c.client.put(f"/v1/admin/sales/{SALE}", json={"phase": "packs"},
                                     headers=c.admin("sales:write")),
              lambda c: c.client.put(f"/v1/admin/sales/{SALE}", json={"phase": "nope"},
                                     headers=c.admin("sales:write"))),
    RouteCase("put", "/v1/admin/sales/{sale}/catalogue", f"sale:{SALE}", "sale.catalogue",
              f"sale:{SALE}", a_sale,
              lambda c: c.client.put(f"/v1/admin/sales/{SALE}/catalogue", json=catalogue(),
                                     headers=c.admin("sales:write")),
              lambda c: c.client.put(f"/v1/admin/sales/{SALE}/catalogue",
                                     json=catalogue(seats=-1), headers=c.admin("sales:write"))),
    # A refused scan: the same ticket again (409 already-used) writes nothing.
    RouteCase("post", "/v1/admin/gates/scan", f"sale:{SALE}", "gate.scan", f"sale:{SALE}",
              a_ticket, scan, scan),
    # A State programme's ticket: its record goes to the games' chain (object set by prepare).
    RouteCase("post", "/v1/admin/gates/scan", "taj:olympic", "gate.scan", None,
              a_programme_ticket, scan, scan),
]  # fmt: skip

MINE = ("/v1/admin/rooms", "/v1/admin/draws", "/v1/admin/sales", "/v1/admin/gates",
        "/v1/rooms/{room}/revoke")  # fmt: skip


async def chain(store: Store, tag: str) -> list[Record]:
    entries: Any = await store.client.xrange(audit_chain(tag))
    return [from_stream(tag, fields) for _, fields in entries]


def assert_valid(records: list[Record]) -> None:
    """Seq 1, 2, … with each record's prev the hash before it, and every hash recomputed."""
    prev = GENESIS
    for seq, r in enumerate(records, start=1):
        assert (r.seq, r.prev) == (seq, prev)
        assert record_hash(r) == r.hash
        prev = r.hash


async def test_the_table_covers_every_admin_route_of_rooms_draws_sales_and_gates(
    client: Client,
) -> None:
    paths = (await (await client.get("/openapi.json")).json())["paths"]
    documented = {(m, p) for p, ops in paths.items() if p.startswith(MINE) for m in ops}
    assert documented == {(c.method, c.path) for c in ROUTES}


@pytest.mark.parametrize("case", ROUTES, ids=lambda c: f"{c.method} {c.path} {c.chain}")
async def test_a_success_writes_one_record_a_refusal_and_a_read_none(
    case: RouteCase, client: Client, tokens: Tokens, store: Store, box: NameBox
) -> None:
    ctx = Ctx(client, tokens, store, {"box": box})
    await case.prepare(ctx)
    expected = case.object or ctx.state.get("object")
    before = await chain(store, case.chain)
    everywhere = await total_records(store)
    resp = await case.ok(ctx)
    assert resp.status < 300, await resp.text()
    after = await chain(store, case.chain)
    # every chain counted: a record written in another chain shows too
    assert await total_records(store) == everywhere + (0 if case.action is None else 1)
    everywhere = await total_records(store)
    assert after[: len(before)] == before
    new = after[len(before) :]
    assert len(new) == (0 if case.action is None else 1)
    assert_valid(after)
    for r in new:
        assert (r.actor, r.action, r.object) == ("admin:test", case.action, expected)
        assert r.chain == case.chain
        assert len(r.digest) == 64
        assert "secret-target" not in repr(r)
        assert "fan" not in (r.actor, r.object)  # the ticket holder is never named
        assert PERSON not in repr(r)
    refused = await case.refused(ctx)
    assert 400 <= refused.status < 500, await refused.text()
    assert refused.headers["Content-Type"].startswith("application/problem+json")
    assert await chain(store, case.chain) == after
    assert await total_records(store) == everywhere


async def test_fifty_concurrent_patches_make_fifty_contiguous_records(
    client: Client, tokens: Tokens, store: Store
) -> None:
    ctx = Ctx(client, tokens, store, {})
    await a_room(ctx)
    headers = ctx.admin("rooms:write")
    answers = await asyncio.gather(*(
        client.patch(f"/v1/admin/rooms/{ROOM}", json={"rate_per_s": 10 + i}, headers=headers)
        for i in range(50)
    ))  # fmt: skip
    assert [r.status for r in answers] == [200] * 50
    records = await chain(store, f"room:{ROOM}")
    assert [r.seq for r in records] == list(range(1, 52))  # the put, then 50 patches
    assert [r.action for r in records] == ["room.put"] + ["room.patch"] * 50
    assert len({r.digest for r in records[1:]}) == 50  # each request its own digest
    assert_valid(records)
