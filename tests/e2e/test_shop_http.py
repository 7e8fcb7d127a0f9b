"""The shop over HTTP on a real Valkey: holds inside windows, rules and quotas, stock races,
confirm, release, expiry, availability."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import hypothesis
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import strategies as st
from redis.asyncio.cluster import RedisCluster

from guichet.app import create_app
from guichet.config import Settings
from guichet.embedded import EmbeddedValkey, free_port
from guichet.shop import model
from guichet.shop.service import Shop, audit
from guichet.state import LIVE
from guichet.store.client import Store
from guichet.store.keys import SaleKeys
from tests.conftest import Backend, Client, Tokens, make_settings, settings_file
from tests.e2e.processes import Served, guichet

SALE = "paris"
H = 3600 * 1_000_000


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(tmp_path, backend.redis_section, shop={"refresh_interval_s": 0.05})


def catalogue(seats: int = 100, sessions: int = 6, ceremonies: int = 0) -> dict[str, Any]:
    """``sessions`` sport sessions ATH-00…, then ``ceremonies`` ceremonies CER-00…"""
    start = datetime(2024, 7, 27, 10, tzinfo=UTC)
    return {
        "sessions": [
            {
                "id": f"{code}-{i:02d}",
                "sport": "Athletics" if kind == "sport" else "Ceremony",
                "venue": "Stade de France",
                "starts_at": (start + timedelta(days=i)).isoformat(),
                "kind": kind,
                "categories": [
                    {"id": "A", "price_eur": 200, "seats": seats},
                    {"id": "B", "price_eur": 100, "seats": seats},
                ],
            }
            for code, kind, count in (("ATH", "sport", sessions), ("CER", "ceremony", ceremonies))
            for i in range(count)
        ]
    }


async def setup_sale(
    client: Client, tokens: Tokens, spec: dict[str, Any] | None = None, **cat: int
) -> None:
    admin = {"Authorization": f"Bearer {tokens.admin('sales:write')}"}
    resp = await client.put(f"/v1/admin/sales/{SALE}", json=spec or {}, headers=admin)
    assert resp.status in (200, 201), await resp.text()
    resp = await client.put(f"/v1/admin/sales/{SALE}/catalogue", json=catalogue(**cat),
                            headers=admin)  # fmt: skip
    assert resp.status == 200, await resp.text()


async def give_window(store: Store, account: str, phase: str = "packs", *,
                      starts_in_h: float = -1, hours: float = 48) -> None:  # fmt: skip
    """A purchase window, as a wave writes it (the key layout is the draw's contract)."""
    seconds, micros = await store.client.time()
    now = int(seconds) * 1_000_000 + int(micros)
    starts = now + int(starts_in_h * H)
    await store.client.hset(SaleKeys(SALE).windows(phase), account,
                            f"{starts}:{starts + int(hours * H)}:test:1")  # fmt: skip


def pack(*sessions: int, quantity: int = 1, category: str = "B") -> dict[str, Any]:
    return {"items": [{"session": f"ATH-{s:02d}", "category": category, "quantity": quantity}
                      for s in sessions]}  # fmt: skip


async def post_hold(
    client: Client, tokens: Tokens, account: str, body: dict[str, Any], key: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {tokens.account(account)}",
               "Idempotency-Key": key or secrets.token_hex(8)}  # fmt: skip
    resp = await client.post(f"/v1/sales/{SALE}/holds", json=body, headers=headers)
    return resp.status, await resp.json()


async def invariant(store: Store) -> None:
    assert audit(await Shop(store).levels(SALE)) == []


async def test_a_pack_held_replayed_confirmed_and_seen_in_availability(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await setup_sale(client, tokens)
    await give_window(store, "fan")
    body = {"packs": [pack(0, 1, 2)]}
    status, held = await post_hold(client, tokens, "fan", body, key="k1")
    assert status == 201, held
    assert (held["state"], held["tickets"], held["packs"]) == ("held", 3, 1)
    again_status, again = await post_hold(client, tokens, "fan", body, key="k1")
    assert (again_status, again["id"]) == (201, held["id"])  # replayed, not held twice
    status, problem = await post_hold(client, tokens, "fan", {"packs": [pack(3, 4, 5)]}, key="k1")
    assert status == 422
    assert problem["type"].endswith("idempotency-key-reused")
    if client.app is not None:
        await client.app[LIVE].reload(SALE)

    async def seats_now() -> dict[tuple[str, str], int]:
        avail = await (await client.get(f"/v1/sales/{SALE}/availability")).json()
        return {(s["session"], c["category"]): c["seats_left"] for s in avail["sessions"]
                for c in s["categories"]}  # fmt: skip

    async with asyncio.timeout(10):  # worker processes: each one's next refresh (50 ms here)
        while True:
            seats = await seats_now()
            if seats[("ATH-00", "B")] == 99:
                break
            await asyncio.sleep(0.05)
    assert seats[("ATH-00", "A")] == 100
    bearer = {"Authorization": f"Bearer {tokens.account('fan')}"}
    url = f"/v1/sales/{SALE}/holds/{held['id']}"
    resp = await client.post(url + "/confirm", json={"payment_reference": "PAY-1"}, headers=bearer)
    assert resp.status == 200, await resp.text()
    bought = await resp.json()
    assert (bought["state"], bought["payment_reference"]) == ("confirmed", "PAY-1")
    resp = await client.post(url + "/confirm", json={"payment_reference": "PAY-1"}, headers=bearer)
    assert resp.status == 200  # idempotent
    resp = await client.delete(url, headers=bearer)
    assert resp.status == 409  # a purchase cannot be released
    other = {"Authorization": f"Bearer {tokens.account('someone-else')}"}
    assert (await client.get(url, headers=other)).status == 404  # not yours: not there
    assert (await client.delete(url, headers=other)).status == 404
    me = await (await client.get(f"/v1/sales/{SALE}/me", headers=bearer)).json()
    assert (me["tickets_bought"], me["tickets_held"], me["tickets_left"]) == (3, 0, 27)
    assert (me["packs"], me["packs_left"], me["window"]["state"]) == (1, 9, "open")
    await invariant(store)


async def test_holds_outside_the_window_are_403_with_the_window(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await setup_sale(client, tokens)
    body = {"packs": [pack(0, 1, 2)]}
    status, problem = await post_hold(client, tokens, "nobody", body)
    assert status == 403
    assert problem["context"]["window"] == {"state": "none"}
    await give_window(store, "early", starts_in_h=2)
    status, problem = await post_hold(client, tokens, "early", body)
    assert status == 403
    assert problem["context"]["window"]["state"] == "before"
    assert "opens at" in problem["detail"]
    await give_window(store, "late", starts_in_h=-50)
    status, problem = await post_hold(client, tokens, "late", body)
    assert status == 403
    assert problem["context"]["window"]["state"] == "after"
    await invariant(store)
    assert (await Shop(store).levels(SALE)).held == {}  # nothing changed


async def test_pack_rules_and_quotas(client: Client, tokens: Tokens, store: Store) -> None:
    await setup_sale(client, tokens)
    await give_window(store, "fan")
    for body, field in (
        ({"packs": [pack(0, 1)]}, "pack 1"),  # two sessions
        ({"packs": [pack(0, 1, 1)]}, "pack 1"),  # one session twice: still two
        ({"items": pack(0, 1, 2)["items"]}, "items"),  # singles in the packs phase
        ({"packs": [pack(0, 1, 2)], "items": []}, "items"),
        ({"packs": [pack(0, 1, 9)]}, "items"),  # no such session
        ({"packs": [pack(0, 1, 2, quantity=0)]}, "packs[0].items[0].quantity"),
        ({"packs": [pack(0, 1, 2)], "extra": 1}, "extra"),
    ):
        status, problem = await post_hold(client, tokens, "fan", body)
        assert status == 422, (body, problem)
        assert [e["field"] for e in problem["errors"]] == [field], problem
    status, _ = await post_hold(client, tokens, "fan",
                                {"packs": [pack(0, 1, 2, 3, 4, 5, quantity=5)]})  # fmt: skip
    assert status == 201  # 30 tickets: the most an account may have
    status, problem = await post_hold(client, tokens, "fan", {"packs": [pack(3, 4, 5)]})
    assert status == 409
    assert problem["context"]["rule"] == "max_tickets"
    assert (problem["context"]["have"], problem["context"]["limit"]) == (30, 30)
    await invariant(store)


async def test_a_pack_needs_3_sport_sessions_and_ceremonies_do_not_count(
    client: Client, tokens: Tokens, store: Store
) -> None:
    """The seed: "au minimum trois billets (dans trois sessions sportives différentes)"."""
    await setup_sale(client, tokens, ceremonies=3)
    await give_window(store, "fan")
    ceremonies = {"items": [{"session": f"CER-{i:02d}", "category": "A", "quantity": 1}
                            for i in range(3)]}  # fmt: skip
    two_and_a_ceremony = {"items": [*pack(0, 1)["items"], *ceremonies["items"][:1]]}
    for body in (ceremonies, two_and_a_ceremony):
        status, problem = await post_hold(client, tokens, "fan", {"packs": [body]})
        assert status == 422, problem
        assert [e["field"] for e in problem["errors"]] == ["pack 1"]
        assert "sport sessions" in problem["errors"][0]["detail"]
    assert (await Shop(store).levels(SALE)).held == {}
    added = {"items": [*pack(0, 1, 2)["items"], *ceremonies["items"]]}
    status, held = await post_hold(client, tokens, "fan", {"packs": [added]})
    assert status == 201, held
    assert (held["tickets"], held["packs"]) == (6, 1)
    resp = await client.get(f"/v1/sales/{SALE}/availability")
    kinds = {s["session"]: s["kind"] for s in (await resp.json())["sessions"]}
    assert (kinds["CER-00"], kinds["ATH-00"]) == ("ceremony", "sport")


async def test_the_per_session_cap_inside_packs(
    client: Client, tokens: Tokens, store: Store
) -> None:
    """Paris 2024 applied 6 tickets per session in packs (a public fact, not the seed); the
    sale's ``pack_max_per_session`` sets it."""
    await setup_sale(client, tokens)
    await give_window(store, "fan")
    status, _ = await post_hold(client, tokens, "fan", {"packs": [pack(0, 1, 2, quantity=4)]})
    assert status == 201
    status, problem = await post_hold(client, tokens, "fan", {"packs": [pack(0, 3, 4, quantity=3)]})
    assert status == 409, problem
    assert (problem["context"]["rule"], problem["context"]["item"]) == ("max_per_session",
                                                                        "ATH-00")  # fmt: skip
    assert (problem["context"]["have"], problem["context"]["limit"]) == (4, 6)
    await setup_sale(client, tokens, {"pack_max_per_session": 8})
    status, _ = await post_hold(client, tokens, "fan", {"packs": [pack(0, 3, 4, quantity=3)]})
    assert status == 201
    await invariant(store)


async def test_holds_outside_the_sale_period_are_403_naming_it(
    client: Client, tokens: Tokens, store: Store
) -> None:
    """A sale's purchase period (the seed: 15 February to 15 March) bounds every hold, even
    inside an account's window; decided by hold.lua on Redis TIME."""
    now = datetime.now(UTC)
    closed = {"purchase_opens_at": (now - timedelta(days=2)).isoformat(),
              "purchase_closes_at": (now - timedelta(days=1)).isoformat()}  # fmt: skip
    await setup_sale(client, tokens, closed)
    await give_window(store, "fan")
    status, problem = await post_hold(client, tokens, "fan", {"packs": [pack(0, 1, 2)]})
    assert status == 403, problem
    assert problem["type"].endswith("outside-sale-period")
    period = problem["context"]["period"]
    assert datetime.fromisoformat(period["closes_at"]) == now - timedelta(days=1)
    assert period["closes_at"] in problem["detail"]
    assert (await Shop(store).levels(SALE)).held == {}
    await setup_sale(client, tokens, {**closed, "purchase_closes_at": None})
    status, _ = await post_hold(client, tokens, "fan", {"packs": [pack(0, 1, 2)]})
    assert status == 201
    admin = {"Authorization": f"Bearer {tokens.admin('sales:write')}"}
    for bad, field in (({"purchase_opens_at": ""}, "purchase_opens_at"),
                       ({"purchase_closes_at": "2023-03-15"}, "purchase_closes_at"),
                       ({**closed, "purchase_opens_at": now.isoformat()}, "purchase_closes_at"),
                       ({"games": "winter"}, "games")):  # fmt: skip
        resp = await client.put(f"/v1/admin/sales/{SALE}", json=bad, headers=admin)
        problem = await resp.json()
        assert resp.status == 422, problem
        assert field in problem["detail"], problem


async def test_a_sale_sells_the_sessions_of_one_games(client: Client, tokens: Tokens) -> None:
    """The seed: the Paralympic sale is a separate one (autumn 2023)."""
    admin = {"Authorization": f"Bearer {tokens.admin('sales:write')}"}
    await setup_sale(client, tokens)  # olympic (the default) with an Olympic catalogue
    para = catalogue()
    para["sessions"][2]["games"] = "paralympic"
    resp = await client.put(f"/v1/admin/sales/{SALE}/catalogue", json=para, headers=admin)
    problem = await resp.json()
    assert resp.status == 422, problem
    assert [e["field"] for e in problem["errors"]] == ["sessions[2].games"]
    resp = await client.put(f"/v1/admin/sales/{SALE}", json={"games": "paralympic"},
                            headers=admin)  # fmt: skip
    problem = await resp.json()
    assert resp.status == 409, problem
    assert problem["type"].endswith("games-mismatch")
    assert [e["field"] for e in problem["errors"]] == ["games"]
    resp = await client.put("/v1/admin/sales/para", json={"games": "paralympic"}, headers=admin)
    assert resp.status == 201
    for s in para["sessions"]:
        s["games"] = "paralympic"
    resp = await client.put("/v1/admin/sales/para/catalogue", json=para, headers=admin)
    assert resp.status == 200, await resp.text()


async def test_500_buyers_for_the_last_10_seats_make_exactly_10_holds(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await setup_sale(client, tokens, {"phase": "singles"}, seats=5, sessions=1)
    accounts = [f"buyer-{i}" for i in range(500)]
    for a in accounts:
        await give_window(store, a, "singles")
    results = await asyncio.gather(*(
        post_hold(client, tokens, a, {"items": [{"session": "ATH-00", "category": c,
                                                 "quantity": 1}]})
        for a, c in zip(accounts, ["A", "B"] * 250, strict=True)
    ))  # fmt: skip
    statuses = sorted(s for s, _ in results)
    assert statuses.count(201) == 10
    assert statuses.count(409) == 490
    assert {b["type"].rsplit("/", 1)[1] for s, b in results if s == 409} == {"sold-out"}
    levels = await Shop(store).levels(SALE)
    assert levels.stock == {"ATH-00:A": 0, "ATH-00:B": 0}
    assert sum(levels.held.values()) == 10
    await invariant(store)
    winners = [(a, b["id"]) for a, (s, b) in zip(accounts, results, strict=True) if s == 201]
    confirmed = await asyncio.gather(*(
        client.post(f"/v1/sales/{SALE}/holds/{hold}/confirm", json={"payment_reference": a},
                    headers={"Authorization": f"Bearer {tokens.account(a)}"})
        for a, hold in winners
    ))  # fmt: skip
    assert [r.status for r in confirmed] == [200] * 10
    levels = await Shop(store).levels(SALE)
    assert (sum(levels.sold.values()), sum(levels.held.values())) == (10, 0)  # exactly 10 sold
    await invariant(store)


async def test_one_account_firing_50_parallel_holds_stays_within_its_quotas(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await setup_sale(client, tokens, {"pack_max_per_session": 30})  # which packs win is random
    await give_window(store, "greedy")
    results = await asyncio.gather(*(
        post_hold(client, tokens, "greedy", {"packs": [pack(i % 6, (i + 1) % 6, (i + 2) % 6)]})
        for i in range(50)
    ))  # fmt: skip
    held = [b for s, b in results if s == 201]
    assert len(held) == 10  # 10 packs of 3: both quotas reached at once
    assert sum(b["tickets"] for b in held) == 30
    assert {b["context"]["rule"] for s, b in results if s == 409} <= {"max_tickets", "max_packs"}
    assert await Shop(store).usage(SALE, "greedy") == (30, 30, 10)
    await invariant(store)


@pytest.mark.inprocess("subscribes to the worker's sale view (client.app[LIVE])")
async def test_release_and_expiry_return_seats(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await setup_sale(client, tokens, {"hold_ttl_s": 1})
    await give_window(store, "fan")
    status, first = await post_hold(client, tokens, "fan", {"packs": [pack(0, 1, 2)]})
    assert status == 201
    bearer = {"Authorization": f"Bearer {tokens.account('fan')}"}
    resp = await client.delete(f"/v1/sales/{SALE}/holds/{first['id']}", headers=bearer)
    assert (await resp.json())["state"] == "released"
    status, second = await post_hold(client, tokens, "fan", {"packs": [pack(3, 4, 5)]})
    assert status == 201
    shop = Shop(store)
    view = await client.app[LIVE].view(SALE)
    assert view is not None
    changes: asyncio.Queue[bytes] = asyncio.Queue(64)
    view.subscribers.add(changes)
    async with asyncio.timeout(10):  # the workers' refresher reaps it after its second
        while json.loads(await changes.get())["seats_left"] < 1200:
            pass
    record = await shop.record(SALE, second["id"])
    assert record is not None
    assert record.state == "expired"
    levels = await shop.levels(SALE)
    assert sum(levels.held.values()) == 0
    assert all(v == 100 for v in levels.stock.values())
    assert await shop.usage(SALE, "fan") == (0, 0, 0)
    resp = await client.post(f"/v1/sales/{SALE}/holds/{second['id']}/confirm",
                             json={"payment_reference": "late"}, headers=bearer)  # fmt: skip
    assert resp.status == 409
    assert (await resp.json())["type"].endswith("hold-expired")
    await invariant(store)


@pytest.mark.inprocess("awaits the worker's room snapshot (client.app[ROOMS])")
async def test_stock_running_out_meters_the_linked_room_down_to_sold_out(
    client: Client, tokens: Tokens, store: Store
) -> None:
    """The waiting room of the sale slows as stock runs down and waiting people see
    ``sold_out`` once nothing is left."""
    await setup_sale(client, tokens, {"phase": "singles", "window_required": False},
                     seats=2, sessions=1)  # fmt: skip
    now = datetime.now(UTC)
    room = {"opens_at": (now - timedelta(hours=1)).isoformat(),
            "closes_at": (now + timedelta(hours=2)).isoformat(), "rate_per_s": 0.001,
            "max_active": 1, "audience": "shop", "target_url": "https://shop.example/",
            "sale": SALE}  # fmt: skip
    # Sold before the room is linked: once linked, holds need its admission (test_room_guard);
    # a room linked after the stock last moved learns the level at the next refresh.
    for n, category in enumerate(["A", "A", "B", "B"]):
        status, _ = await post_hold(client, tokens, f"b{n}",
                                    {"items": [{"session": "ATH-00", "category": category,
                                                "quantity": 1}]})  # fmt: skip
        assert status == 201
    admin = {"Authorization": f"Bearer {tokens.admin('rooms:write')}"}
    assert (await client.put("/v1/admin/rooms/r1", json=room, headers=admin)).status == 201
    waiting = {"Authorization": f"Bearer {tokens.account('w')}"}
    resp = await client.post("/v1/rooms/r1/join", headers=waiting)
    ticket = (await resp.json())["ticket"]
    from guichet.state import ROOMS

    rt = client.app[ROOMS].get("r1")
    assert rt is not None
    async with asyncio.timeout(10):
        while not (rt.counters and rt.counters.sold_out):
            await rt.updated.wait()
    status = await (await client.get("/v1/rooms/r1/status",
                                     headers={"X-Queue-Ticket": ticket})).json()  # fmt: skip
    assert status["state"] == "sold_out"


async def test_availability_streams_changes_over_sse(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await setup_sale(client, tokens, {"phase": "singles"}, seats=10, sessions=2)
    await give_window(store, "fan", "singles")
    resp = await client.get(f"/v1/sales/{SALE}/availability/events")
    assert resp.headers["Content-Type"].startswith("text/event-stream")

    async def next_event() -> tuple[str, dict[str, Any]]:
        event, data = "", ""
        while True:
            line = (await resp.content.readline()).decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data += line.partition(":")[2].strip()
            elif line == "" and data:
                return event, json.loads(data)

    async with asyncio.timeout(10):
        event, first = await next_event()
        assert (event, first["seats_left"]) == ("availability", 40)
        status, _ = await post_hold(client, tokens, "fan", {"items": [
            {"session": "ATH-01", "category": "B", "quantity": 3}]})  # fmt: skip
        assert status == 201
        event, changed = await next_event()
    assert event == "changes"
    assert changed["seats_left"] == 37
    assert changed["changes"] == [{"session": "ATH-01", "category": "B", "seats_left": 7,
                                   "level": "many"}]  # fmt: skip
    resp.close()


async def test_bad_input_is_refused_with_a_problem_naming_it_and_changes_nothing(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await setup_sale(client, tokens)
    await give_window(store, "fan")
    bearer = {"Authorization": f"Bearer {tokens.account('fan')}"}
    url = f"/v1/sales/{SALE}/holds"
    body = {"packs": [pack(0, 1, 2)]}
    for headers, status, field in (
        (bearer, 400, "Idempotency-Key"),  # missing
        ({**bearer, "Idempotency-Key": "x" * 65}, 400, "Idempotency-Key"),
        ({**bearer, "Idempotency-Key": "clé"}, 400, "Idempotency-Key"),
    ):
        resp = await client.post(url, json=body, headers=headers)
        problem = await resp.json()
        assert resp.status == status, problem
        assert resp.content_type == "application/problem+json"
        assert [e["field"] for e in problem["errors"]] == [field]
    keyed = {**bearer, "Idempotency-Key": "k"}
    assert (await client.post(url, json=body, headers={"Idempotency-Key": "k"})).status == 401
    assert (await client.post("/v1/sales/nope/holds", json=body, headers=keyed)).status == 404
    assert (await client.post("/v1/sales/NOT%20A%20SALE/holds", json=body,
                              headers=keyed)).status == 404  # fmt: skip
    resp = await client.post(url, data=b"{" + b" " * 70_000 + b"}", headers={
        **keyed, "Content-Type": "application/json"})  # fmt: skip
    assert resp.status == 413
    resp = await client.post(url, data=b"not json", headers={**keyed,
                             "Content-Type": "application/json"})  # fmt: skip
    assert resp.status == 400
    for bad_id in ("x", "a" * 41, "bad%20id"):
        resp = await client.post(f"{url}/{bad_id}/confirm", json={"payment_reference": "p"},
                                 headers=bearer)  # fmt: skip
        assert resp.status == 404
    status, held = await post_hold(client, tokens, "fan", body)
    assert status == 201
    for confirm_body, field in (({}, "payment_reference"),
                                ({"payment_reference": ""}, "payment_reference"),
                                ({"payment_reference": "p", "amount": 3}, "amount")):  # fmt: skip
        resp = await client.post(f"{url}/{held['id']}/confirm", json=confirm_body,
                                 headers=bearer)  # fmt: skip
        problem = await resp.json()
        assert resp.status == 422, problem
        assert [e["field"] for e in problem["errors"]] == [field]
    admin = {"Authorization": f"Bearer {tokens.admin('sales:write')}"}
    weak = {"Authorization": f"Bearer {tokens.admin('rooms:write')}"}
    cat_url = f"/v1/admin/sales/{SALE}/catalogue"
    assert (await client.put(cat_url, json=catalogue(), headers=weak)).status == 403
    bad = catalogue()
    bad["sessions"][0]["categories"][0]["seats"] = -1
    resp = await client.put(cat_url, json=bad, headers=admin)
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["field"] == "sessions[0].categories[0].seats"
    resp = await client.put(cat_url, json=catalogue(seats=0), headers=admin)  # below the held
    assert resp.status == 409
    assert (await resp.json())["type"].endswith("below-taken")
    resp = await client.put(f"/v1/admin/sales/{SALE}", json={"phase": "lottery"}, headers=admin)
    assert resp.status == 422
    levels = await Shop(store).levels(SALE)
    assert sum(levels.held.values()) == 3  # only the one good hold
    assert set(levels.loaded.values()) == {100}
    await invariant(store)


@pytest.mark.inprocess("subscribes to the worker's sale view (client.app[LIVE])")
async def test_expiry_under_load_returns_only_the_expired_holds(
    client: Client, tokens: Tokens, store: Store
) -> None:
    """2,000 long holds and 300 one-second holds, while 40 buyers keep holding over HTTP: the
    short ones all return to stock on their own, the long ones are untouched, the invariant
    holds throughout (the reaper reads only the head of the expiry queue)."""
    await setup_sale(client, tokens, {"phase": "singles", "window_required": False,
                                      "hold_ttl_s": 3600}, seats=5000, sessions=4)  # fmt: skip
    shop = Shop(store)
    one = msgspec.convert({"items": [{"session": "ATH-00", "category": "A", "quantity": 1}]},
                          model.HoldRequest)  # fmt: skip
    for i in range(0, 2000, 200):
        await asyncio.gather(*(shop.hold(SALE, "singles", f"long-{j}", "k", one)
                               for j in range(i, i + 200)))  # fmt: skip
    short = model.SaleSpec(phase="singles", window_required=False, hold_ttl_s=1)
    await shop.put(SALE, short)  # holds made from now on last one second
    short_ids = [
        a.hold for a in await asyncio.gather(
            *(shop.hold(SALE, "singles", f"short-{j}", "k", one) for j in range(300)))
    ]  # fmt: skip
    stop = asyncio.Event()
    audits: list[list[str]] = []

    async def buyer(n: int) -> int:
        made = 0
        while not stop.is_set():
            status, _ = await post_hold(client, tokens, f"buyer-{n}-{made}", {"items": [
                {"session": f"ATH-0{1 + n % 3}", "category": "B", "quantity": 1}]})  # fmt: skip
            assert status == 201
            made += 1
            audits.append(audit(await shop.levels(SALE)))
        return made

    buyers = [asyncio.create_task(buyer(n)) for n in range(40)]
    view = await client.app[LIVE].view(SALE)
    assert view is not None
    changes: asyncio.Queue[bytes] = asyncio.Queue(1024)
    view.subscribers.add(changes)
    try:
        async with asyncio.timeout(15):
            while True:
                await changes.get()
                raw = await store.client.hmget(SaleKeys(SALE).holds, short_ids)
                if all(isinstance(r, bytes) and b'"state":"expired"' in r for r in raw):
                    break
    finally:
        stop.set()
        made = sum(await asyncio.gather(*buyers))
    assert made > 40
    assert all(a == [] for a in audits)
    levels = await shop.levels(SALE)
    assert levels.held["ATH-00:A"] == 2000  # the long holds, untouched
    assert levels.stock["ATH-00:A"] == 3000
    assert await store.client.zcard(SaleKeys(SALE).expiries) >= 2000
    await invariant(store)


@pytest.fixture
def no_aof_app(tmp_path: Path) -> Iterator[tuple[web.Application, Tokens]]:
    """The app on a Valkey with no append-only file (purchases could not be durable)."""
    with EmbeddedValkey(tmp_path / "no-aof", extra_args=["--appendonly", "no"]) as server:
        settings = make_settings(tmp_path, {"url": server.url})
        yield create_app(settings), Tokens(settings)


async def test_confirm_is_503_when_the_store_cannot_make_it_durable(
    no_aof_app: tuple[web.Application, Tokens],
) -> None:
    app, tokens = no_aof_app
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        await setup_sale(c, tokens, {"window_required": False})
        status, held = await post_hold(c, tokens, "fan", {"packs": [pack(0, 1, 2)]})
        assert status == 201
        bearer = {"Authorization": f"Bearer {tokens.account('fan')}"}
        resp = await c.post(f"/v1/sales/{SALE}/holds/{held['id']}/confirm",
                            json={"payment_reference": "p"}, headers=bearer)  # fmt: skip
        problem = await resp.json()
        assert resp.status == 503, problem
        assert problem["type"].endswith("durability-unavailable")
        assert resp.headers["Retry-After"] == "30"


async def test_catalogue_upload_takes_only_the_json_the_openapi_declares(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await setup_sale(client, tokens)
    doc = await (await client.get("/openapi.json")).json()
    put = doc["paths"]["/v1/admin/sales/{sale}/catalogue"]["put"]
    assert set(put["requestBody"]["content"]) == {"application/json"}
    assert "415" in put["responses"]
    admin = {"Authorization": f"Bearer {tokens.admin('sales:write')}"}
    url = f"/v1/admin/sales/{SALE}/catalogue"
    body = json.dumps(catalogue(seats=150)).encode()  # would load (more seats) if taken
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        None,
    ):
        headers = {**admin, **({"Content-Type": content_type} if content_type else {})}
        resp = await client.put(url, data=body, headers=headers,
                                skip_auto_headers=["Content-Type"])  # fmt: skip
        problem = await resp.json(content_type=None)
        assert resp.status == 415, (content_type, problem)
        assert resp.content_type == "application/problem+json"
        assert [e["field"] for e in problem["errors"]] == ["Content-Type"]
    assert set((await Shop(store).levels(SALE)).loaded.values()) == {100}  # nothing changed
    resp = await client.put(url, data=body, headers={
        **admin, "Content-Type": "application/json; charset=utf-8"})  # fmt: skip
    assert resp.status == 200, await resp.text()
    assert set((await Shop(store).levels(SALE)).loaded.values()) == {150}


@hypothesis.settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(
    content_type=st.one_of(st.none(), st.sampled_from(
        ["application/json", "text/plain", "application/xml", "text/csv"]), st.text(max_size=30)),
    data=st.one_of(st.binary(max_size=300), st.builds(lambda v: json.dumps(v).encode(),
                   st.recursive(st.none() | st.integers() | st.text(max_size=8),
                                lambda inner: st.lists(inner, max_size=3)
                                | st.dictionaries(st.sampled_from(["sessions", "id", "seats",
                                                                   "categories"]), inner,
                                                  max_size=3), max_leaves=10))),
)  # fmt: skip
async def test_any_catalogue_upload_is_a_problem_never_a_5xx(
    client: Client, tokens: Tokens, content_type: str | None, data: bytes
) -> None:
    admin = {"Authorization": f"Bearer {tokens.admin('sales:write')}"}
    assert (await client.put(f"/v1/admin/sales/{SALE}", json={}, headers=admin)).status < 300
    headers = {**admin, **({"Content-Type": content_type} if content_type is not None else {})}
    try:
        resp = await client.put(f"/v1/admin/sales/{SALE}/catalogue", data=data, headers=headers,
                                skip_auto_headers=["Content-Type"])  # fmt: skip
    except ValueError:  # a header value aiohttp's client itself will not send
        hypothesis.assume(False)
    assert 400 <= resp.status < 500, await resp.text()
    assert resp.content_type == "application/problem+json"


@pytest.mark.inprocess("awaits the worker's sale view (client.app[LIVE])")
async def test_a_replayed_hold_answers_the_holds_state_now(
    client: Client, tokens: Tokens, store: Store
) -> None:
    """Replaying an Idempotency-Key answers what GET answers once the hold moved on
    (released, confirmed, expired: 200 and that state); while held, the first answer (201)."""
    await setup_sale(client, tokens)
    await give_window(store, "fan")
    bearer = {"Authorization": f"Bearer {tokens.account('fan')}"}
    admin = {"Authorization": f"Bearer {tokens.admin('sales:write')}"}
    holds = f"/v1/sales/{SALE}/holds"
    ids = {}
    for n, key in enumerate(("released", "confirmed", "expired")):
        if key == "expired":  # holds made from now on last one second
            resp = await client.put(f"/v1/admin/sales/{SALE}", json={"hold_ttl_s": 1},
                                    headers=admin)  # fmt: skip
            assert resp.status == 200
        body = {"packs": [pack(n, n + 1, n + 2)]}
        status, held = await post_hold(client, tokens, "fan", body, key=key)
        assert status == 201, held
        again_status, again = await post_hold(client, tokens, "fan", body, key=key)
        assert (again_status, again) == (201, held)  # still held: the first answer
        ids[key] = held["id"]
    assert (await client.delete(f"{holds}/{ids['released']}", headers=bearer)).status == 200
    resp = await client.post(f"{holds}/{ids['confirmed']}/confirm",
                             json={"payment_reference": "PAY-9"}, headers=bearer)  # fmt: skip
    assert resp.status == 200, await resp.text()
    view = await client.app[LIVE].view(SALE)
    assert view is not None
    changes: asyncio.Queue[bytes] = asyncio.Queue(64)
    view.subscribers.add(changes)
    async with asyncio.timeout(15):  # the refresher returns the third one after its second
        while getattr(await Shop(store).record(SALE, ids["expired"]), "state", "") != "expired":
            await changes.get()
    for n, key in enumerate(("released", "confirmed", "expired")):
        status, replay = await post_hold(client, tokens, "fan",
                                         {"packs": [pack(n, n + 1, n + 2)]}, key=key)  # fmt: skip
        shown = await client.get(f"{holds}/{ids[key]}", headers=bearer)
        assert (status, replay["state"]) == (200, key), replay
        assert (shown.status, await shown.json()) == (200, replay)
    assert replay["expires_at"]
    await invariant(store)
    assert sum((await Shop(store).levels(SALE)).held.values()) == 0  # a replay holds nothing


async def set_appendfsync(store: Store, policy: str) -> None:
    """``CONFIG SET appendfsync`` on the server, or on every node of a Cluster."""
    if isinstance(store.client, RedisCluster):
        await store.client.config_set("appendfsync", policy, target_nodes=RedisCluster.ALL_NODES)
    else:
        await store.client.config_set("appendfsync", policy)


@pytest.fixture
def two_apps(tmp_path: Path, backend: Backend) -> tuple[web.Application, web.Application, Tokens]:
    """Two apps on one store, as two workers are (built outside the event loop)."""
    settings = make_settings(tmp_path, backend.redis_section, shop={"confirm_timeout_ms": 300})
    return create_app(settings), create_app(settings), Tokens(settings)


async def test_a_retried_confirm_answers_200_only_once_the_purchase_is_on_disk(
    two_apps: tuple[web.Application, web.Application, Tokens], store: Store
) -> None:
    """The first confirm's WAITAOF times out (fsync switched off): 503. Its retry, on another
    worker's connection (which wrote nothing before), must wait for the purchase's own write to
    reach the disk too — 503 while fsync stays off, 200 once it is back."""
    app_one, app_two, tokens = two_apps
    async with (
        TestClient(TestServer(app_one, host="127.0.0.1")) as one,
        TestClient(TestServer(app_two, host="127.0.0.1")) as two,
    ):
        await setup_sale(one, tokens, {"window_required": False})
        status, held = await post_hold(one, tokens, "fan", {"packs": [pack(0, 1, 2)]})
        assert status == 201, held
        url = f"/v1/sales/{SALE}/holds/{held['id']}/confirm"
        bearer = {"Authorization": f"Bearer {tokens.account('fan')}"}
        await two.get(f"/v1/sales/{SALE}/availability")  # worker two has used its connection
        await set_appendfsync(store, "no")  # nothing reaches the disk now
        try:
            for attempt, worker in enumerate((one, two, two)):
                resp = await worker.post(url, json={"payment_reference": "PAY-1"}, headers=bearer)
                problem = await resp.json()
                assert resp.status == 503, (attempt, problem)
                assert problem["type"].endswith("not-durable-yet")
                assert resp.headers["Retry-After"] == "1"
            record = await Shop(store).record(SALE, held["id"])
            assert record is not None
            assert record.state == "confirmed"  # recorded, only not known to be on disk
        finally:
            await set_appendfsync(store, "everysec")
        async with asyncio.timeout(30):  # each 503 waited confirm_timeout_ms for the fsync
            while (resp := await two.post(url, json={"payment_reference": "PAY-1"},
                                          headers=bearer)).status == 503:  # fmt: skip
                pass
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["state"] == "confirmed"
    await invariant(store)


SINGLE = {"items": [{"session": "ATH-00", "category": "A", "quantity": 1}]}


@pytest.mark.inprocess("reads the worker's rules (client.app[LIVE]); 2 workers: a serve test below")
async def test_a_phase_switch_applies_to_the_very_next_hold(
    client: Client, tokens: Tokens, store: Store
) -> None:
    """One worker: a switch through its admin API, and one behind its back (``guichet shop
    put``, another worker), each apply to the next hold — no cache decides with old rules."""
    await setup_sale(client, tokens, {"window_required": False})
    view = await client.app[LIVE].view(SALE)
    assert view is not None
    assert view.spec.phase == "packs"
    admin = {"Authorization": f"Bearer {tokens.admin('sales:write')}"}
    resp = await client.put(f"/v1/admin/sales/{SALE}", json={"phase": "singles",
                            "window_required": False}, headers=admin)  # fmt: skip
    assert resp.status == 200
    status, held = await post_hold(client, tokens, "a1", SINGLE)
    assert status == 201, held
    await Shop(store).put(SALE, model.SaleSpec(phase="packs", window_required=False))
    status, held = await post_hold(client, tokens, "a2", {"packs": [pack(0, 1, 2)]})
    assert status == 201, held
    await Shop(store).put(SALE, model.SaleSpec(phase="singles", window_required=False))
    status, held = await post_hold(client, tokens, "a3", SINGLE)  # refused by the cache first
    assert status == 201, held
    await Shop(store).put(SALE, model.SaleSpec(phase="packs", window_required=False))
    status, problem = await post_hold(client, tokens, "a4", SINGLE)  # accepted by the cache
    assert status == 422, problem
    assert problem["errors"][0]["detail"].startswith("this sale is in its packs phase")
    await invariant(store)


async def test_a_phase_switch_on_one_worker_applies_at_once_on_another(
    two_apps: tuple[web.Application, web.Application, Tokens], store: Store
) -> None:
    app_one, app_two, tokens = two_apps
    async with (
        TestClient(TestServer(app_one, host="127.0.0.1")) as one,
        TestClient(TestServer(app_two, host="127.0.0.1")) as two,
    ):
        await setup_sale(one, tokens, {"window_required": False})
        status, held = await post_hold(two, tokens, "p0", {"packs": [pack(0, 1, 2)]})
        assert status == 201, held  # worker two has the sale, in its packs phase
        admin = {"Authorization": f"Bearer {tokens.admin('sales:write')}"}
        for n, (phase, body) in enumerate([("singles", SINGLE),
                                           ("packs", {"packs": [pack(0, 1, 2)]})] * 2):  # fmt: skip
            resp = await one.put(f"/v1/admin/sales/{SALE}", json={"phase": phase,
                                 "window_required": False}, headers=admin)  # fmt: skip
            assert resp.status == 200
            status, held = await post_hold(two, tokens, f"b{n}", body)
            assert status == 201, (phase, held)
            avail = await (await two.get(f"/v1/sales/{SALE}/availability")).json()
            assert avail["phase"] == phase
    await invariant(store)


@pytest.fixture
def serve_config(tmp_path: Path, settings: Settings) -> Path:
    return settings_file(settings, tmp_path / "serve.toml")


@pytest.mark.slow
async def test_a_phase_switch_reaches_both_workers_of_guichet_serve_at_once(
    tmp_path: Path, serve_config: Path, tokens: Tokens
) -> None:
    """``guichet serve --workers 2``: switch the phase through the admin API; the very next
    hold of the new phase succeeds on whichever worker a fresh connection reaches."""
    port = free_port()
    served = Served(guichet("--config", str(serve_config), "serve", "--port", str(port),
                            "--workers", "2"), cwd=tmp_path)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    admin = {"Authorization": f"Bearer {tokens.admin('sales:write')}"}
    try:
        await asyncio.to_thread(served.wait_msg, "listening", 60, worker=0)
        await asyncio.to_thread(served.wait_msg, "listening", 60, worker=1)
        # A fresh connection per request lets SO_REUSEPORT spread them over both workers.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(base, connector=connector) as http:
            async with http.put(f"/v1/admin/sales/{SALE}", json={"window_required": False},
                                headers=admin) as resp:  # fmt: skip
                assert resp.status == 201, await resp.text()
            async with http.put(f"/v1/admin/sales/{SALE}/catalogue", json=catalogue(),
                                headers=admin) as resp:  # fmt: skip
                assert resp.status == 200, await resp.text()
            for _ in range(30):  # both workers now hold the sale's view, in its packs phase
                async with http.get(f"/v1/sales/{SALE}/availability") as resp:
                    assert (await resp.json())["phase"] == "packs"
            n = 0
            for phase, body in [("singles", SINGLE), ("packs", {"packs": [pack(0, 1, 2)]})]:
                spec = {"phase": phase, "window_required": False}
                async with http.put(f"/v1/admin/sales/{SALE}", json=spec, headers=admin) as resp:
                    assert resp.status == 200, await resp.text()
                for _ in range(12):
                    n += 1
                    headers = {"Authorization": f"Bearer {tokens.account(f'fan-{n}')}",
                               "Idempotency-Key": f"k{n}"}  # fmt: skip
                    async with http.post(f"/v1/sales/{SALE}/holds", json=body,
                                         headers=headers) as resp:  # fmt: skip
                        assert resp.status == 201, (phase, await resp.text())
        served.signal(signal.SIGTERM)
        assert await asyncio.to_thread(served.wait) == 0
    finally:
        await asyncio.to_thread(served.stop)


def room_spec(**extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"opens_at": (now - timedelta(hours=1)).isoformat(),
            "closes_at": (now + timedelta(hours=2)).isoformat(), "rate_per_s": 5,
            "max_active": 100, "audience": "shop", "target_url": "https://shop.example/",
            **extra}  # fmt: skip


async def room_shows(client: Client, room: str, remaining: float) -> None:
    """Wait (pacer ticks, no sleeps) until ``room`` shows the sale's stock level."""
    from guichet.state import ROOMS

    rooms = client.app[ROOMS]
    rt = await rooms.runtime(room)
    async with asyncio.timeout(15):
        while rt.counters is None or rt.counters.stock_remaining != remaining:
            await rt.updated.wait()


@pytest.mark.inprocess("awaits the worker's sale view and room snapshot (client.app)")
async def test_a_room_linked_after_the_stock_moved_learns_the_level(
    client: Client, tokens: Tokens, store: Store
) -> None:
    """The stock moves (to sold out) while no room is linked; a room linked afterwards meters
    by it (sold out: nobody is called)."""
    await setup_sale(client, tokens, {"phase": "singles", "window_required": False},
                     seats=1, sessions=1)  # fmt: skip
    view = await client.app[LIVE].view(SALE)
    assert view is not None
    changes: asyncio.Queue[bytes] = asyncio.Queue(64)
    view.subscribers.add(changes)
    for category in ("A", "B"):
        status, _ = await post_hold(client, tokens, f"buyer-{category}", {"items": [
            {"session": "ATH-00", "category": category, "quantity": 1}]})  # fmt: skip
        assert status == 201
    async with asyncio.timeout(10):  # the refresher has seen it: the level was handed on
        while not json.loads(await changes.get())["sold_out"]:
            pass
    admin = {"Authorization": f"Bearer {tokens.admin('rooms:write')}"}
    resp = await client.put("/v1/admin/rooms/late", json=room_spec(sale=SALE), headers=admin)
    assert resp.status == 201, await resp.text()
    await room_shows(client, "late", 0.0)
    waiting = {"Authorization": f"Bearer {tokens.account('w')}"}
    ticket = (await (await client.post("/v1/rooms/late/join", headers=waiting)).json())["ticket"]
    status = await (await client.get("/v1/rooms/late/status",
                                     headers={"X-Queue-Ticket": ticket})).json()  # fmt: skip
    assert status["state"] == "sold_out"
    stats = await (await client.get("/v1/admin/rooms/late", headers={
        "Authorization": f"Bearer {tokens.admin('rooms:read')}"})).json()  # fmt: skip
    assert (stats["stock_remaining"], stats["sold_out"]) == (0.0, True)


async def test_a_worker_starting_hands_the_stock_level_to_the_linked_rooms(
    two_apps: tuple[web.Application, web.Application, Tokens], store: Store
) -> None:
    """The stock sells out while no worker runs (another host, the CLI): a worker starting
    brings the linked room's level up to date."""
    app_one, app_two, tokens = two_apps
    admin = {"Authorization": f"Bearer {tokens.admin('rooms:write')}"}
    async with TestClient(TestServer(app_one, host="127.0.0.1")) as one:
        await setup_sale(one, tokens, {"phase": "singles", "window_required": False},
                         seats=1, sessions=1)  # fmt: skip
        resp = await one.put("/v1/admin/rooms/r1", json=room_spec(sale=SALE), headers=admin)
        assert resp.status == 201, await resp.text()
        await room_shows(one, "r1", 1.0)
    shop = Shop(store)
    for category in ("A", "B"):
        request = msgspec.convert({"items": [{"session": "ATH-00", "category": category,
                                              "quantity": 1}]}, model.HoldRequest)  # fmt: skip
        assert (await shop.hold(SALE, "singles", category, "k", request)).code == "ok"
    async with TestClient(TestServer(app_two, host="127.0.0.1")) as two:
        await room_shows(two, "r1", 0.0)
