"""The room admin API through the real app: create, replace, read, patch, pause, the stock
signal, and who may call it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import Tokens
from tests.e2e.room_helpers import ROOM, Api, Json, bearer, iso, ok, problem, spec

# --- admin: create, read, change -------------------------------------------------------------


async def test_put_creates_then_replaces_and_get_lists(api: Api) -> None:
    body = spec(
        opens_at="2030-06-01T20:00:00+02:00",
        closes_at="2030-06-02T20:00:00+02:00",
        rate_per_s=25.5,
        sale="tour-2030",
    )
    created = await api.put(ROOM, body, status=201)
    assert created["id"] == ROOM
    assert created["phase"] == "prequeue"
    assert created["issued"] == 0
    assert created["spec"] == {
        **body,
        "opens_at": "2030-06-01T18:00:00Z",  # offsets normalised to UTC
        "closes_at": "2030-06-02T18:00:00Z",
        "idle_timeout_s": 900,
        "mode": "shuffle-then-fifo",
        "token_ttl_s": 300,
        "paused": False,
        "draw": None,  # links no draw: its entries need no admission
        "name": None,  # the landing page shows the id
        "listed": True,  # on the landing page until it closes
        "challenge_bits": 0,  # no proof of work at join
    }

    replaced = await api.put(ROOM, {**body, "rate_per_s": 3, "mode": "fifo"}, status=200)
    assert replaced["spec"]["rate_per_s"] == 3
    assert replaced["spec"]["mode"] == "fifo"
    assert "sale" in replaced["spec"]
    shown = await api.stats(ROOM)
    assert shown["spec"] == replaced["spec"]

    await api.create("other-room", audience="other.example")
    listed = await ok(await api.client.get("/v1/admin/rooms", headers=api.admin))
    assert [room["id"] for room in listed["rooms"]] == ["other-room", ROOM]
    assert listed["rooms"][1]["spec"] == replaced["spec"]
    assert listed["rooms"][0]["phase"] == "open"


async def test_replace_keeps_counters_and_tickets(api: Api) -> None:
    await api.create(paused=True)
    first = await api.join(ROOM, "acc-1")
    await api.join(ROOM, "acc-2")
    replaced = await api.put(ROOM, spec(paused=True, rate_per_s=7), status=200)
    assert replaced["issued"] == 2
    again = await api.join(ROOM, "acc-1")
    assert again["ticket"] == first["ticket"]
    assert again["created"] is False


async def test_patch_changes_live_fields(api: Api) -> None:
    await api.create(rate_per_s=10, max_active=50)
    closes = iso(datetime.now(UTC).replace(microsecond=0) + timedelta(hours=5))
    changed = await api.patch(
        ROOM, rate_per_s=2.5, max_active=3, idle_timeout_s=60, paused=True, closes_at=closes
    )
    assert {k: changed["spec"][k] for k in ("rate_per_s", "max_active", "idle_timeout_s")} == {
        "rate_per_s": 2.5,
        "max_active": 3,
        "idle_timeout_s": 60,
    }
    assert changed["spec"]["paused"] is True
    assert changed["spec"]["closes_at"] == closes
    assert changed["effective_rate"] == 0
    assert (await api.stats())["spec"] == changed["spec"]

    changed = await api.patch(ROOM, paused=False)
    assert changed["spec"]["paused"] is False
    assert changed["spec"]["rate_per_s"] == 2.5  # a patch leaves the other fields alone
    assert changed["effective_rate"] == 2.5


async def test_patch_closes_at_in_the_past_closes_the_room(api: Api) -> None:
    await api.create(paused=True)
    waiting = await api.join(ROOM, "acc-1")
    assert waiting["state"] == "waiting"
    closes = iso(datetime.now(UTC) - timedelta(seconds=1))
    changed = await api.patch(ROOM, closes_at=closes)
    assert changed["phase"] == "closed"
    await api.wait_state(ROOM, waiting["ticket"], "closed")
    await problem(await api.join_resp(ROOM, "acc-2"), 409, "room-closed")


async def test_pause_and_resume(api: Api) -> None:
    await api.create(rate_per_s=40)
    paused = await ok(await api.client.post(f"/v1/admin/rooms/{ROOM}/pause", headers=api.admin))
    assert paused["spec"]["paused"] is True
    assert paused["effective_rate"] == 0
    assert (await api.stats())["spec"]["paused"] is True
    resumed = await ok(await api.client.post(f"/v1/admin/rooms/{ROOM}/resume", headers=api.admin))
    assert resumed["spec"]["paused"] is False
    assert resumed["effective_rate"] == 40


async def test_stock_signal_meters_then_sells_out(api: Api) -> None:
    # max_active 1: the first number is called, the second waits for the slot.
    await api.create(rate_per_s=10, max_active=1)
    first = await api.ready_ticket(ROOM, "acc-1")
    second = (await api.join(ROOM, "acc-2"))["ticket"]
    assert (await api.status(ROOM, second))["state"] == "waiting"

    async def put_stock(remaining: float) -> Json:
        return await ok(
            await api.client.put(
                f"/v1/admin/rooms/{ROOM}/stock", json={"remaining": remaining}, headers=api.admin
            )
        )

    metered = await put_stock(0.1)
    assert metered["stock_remaining"] == pytest.approx(0.1)
    assert metered["effective_rate"] == pytest.approx(5.0)  # half the rate at 10 % left
    assert metered["sold_out"] is False

    sold = await put_stock(0)
    assert sold["effective_rate"] == 0
    assert sold["sold_out"] is True
    assert (await api.stats())["sold_out"] is True
    assert (await api.status(ROOM, second))["state"] == "sold_out"
    assert (await api.status(ROOM, first))["state"] == "ready"  # already called: still ready

    await problem(
        await api.client.put(
            f"/v1/admin/rooms/{ROOM}/stock", json={"remaining": 1.5}, headers=api.admin
        ),
        422,
    )
    await problem(
        await api.client.put(
            "/v1/admin/rooms/no-such-room/stock", json={"remaining": 1}, headers=api.admin
        ),
        404,
    )


# --- admin: who may ----------------------------------------------------------------------------

ADMIN_CALLS: list[tuple[str, str, Json | None, str]] = [
    ("GET", "/v1/admin/rooms", None, "rooms:read"),
    ("GET", f"/v1/admin/rooms/{ROOM}", None, "rooms:read"),
    ("PUT", f"/v1/admin/rooms/{ROOM}", spec(rate_per_s=1), "rooms:write"),
    ("PATCH", f"/v1/admin/rooms/{ROOM}", {"rate_per_s": 1}, "rooms:write"),
    ("POST", f"/v1/admin/rooms/{ROOM}/pause", None, "rooms:write"),
    ("POST", f"/v1/admin/rooms/{ROOM}/resume", None, "rooms:write"),
    ("PUT", f"/v1/admin/rooms/{ROOM}/stock", {"remaining": 0}, "rooms:write"),
]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ADMIN_CALLS)
async def test_admin_routes_need_an_admin_token_with_the_scope(
    api: Api, tokens: Tokens, method: str, path: str, body: Json | None, scope: str
) -> None:
    await api.create(rate_per_s=77, paused=True)
    before = await api.stats()
    other_scope = "rooms:write" if scope == "rooms:read" else "rooms:read"
    for headers, status in (
        ({}, 401),
        (bearer("not-a-token"), 401),
        (bearer(tokens.account("acc-1")), 401),
        (bearer(tokens.admin("ops:read", other_scope)), 403),
    ):
        resp = await api.client.request(method, path, json=body, headers=headers)
        refused = await problem(resp, status)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        if status == 403:
            assert scope in refused["detail"]
    after = await api.stats()
    assert after["spec"] == before["spec"]  # nothing changed
    assert after["stock_remaining"] is None

    resp = await api.client.request(method, path, json=body, headers=bearer(tokens.admin(scope)))
    assert resp.status == 200, await resp.text()
