"""Joining a room through the real app: one ticket per account, the refusals, numbers never
reused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import Tokens
from tests.e2e.room_helpers import (
    COOKIE,
    ROOM,
    Api,
    Json,
    bearer,
    eventually,
    iso,
    ok,
    problem,
    rejected,
    spec,
)

# --- join ------------------------------------------------------------------------------------


async def test_join_gives_one_ticket_per_account(api: Api) -> None:
    await api.create(paused=True)
    api.forget_cookies()
    resp = await api.join_resp(ROOM, "acc-1")
    first = await ok(resp, 201)
    assert first["created"] is True
    assert first["room"] == ROOM
    assert first["state"] == "waiting"
    assert first["number"] == 0
    assert first["position"] == 1
    assert first["ahead"] == 0
    assert first["ticket"].count(".") == 2
    cookie = resp.cookies[COOKIE + ROOM]
    assert cookie.value == first["ticket"]
    assert cookie["httponly"] is True
    assert cookie["path"] == "/"
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]  # rooms.cookie_secure = false in the tests (plain HTTP)

    resp = await api.join_resp(ROOM, "acc-1")
    again = await ok(resp, 200)
    assert again["created"] is False
    assert again["ticket"] == first["ticket"]
    assert again["number"] == first["number"]
    assert resp.cookies[COOKIE + ROOM].value == first["ticket"]

    second = await ok(await api.join_resp(ROOM, "acc-2"), 201)
    assert second["number"] == 1
    assert second["position"] == 2
    assert second["ticket"] != first["ticket"]
    assert (await api.stats())["issued"] == 2


async def test_join_refusals(api: Api, tokens: Tokens) -> None:
    past = datetime.now(UTC).replace(microsecond=0)
    await api.create(
        "closed-room",
        opens_at=iso(past - timedelta(hours=2)),
        closes_at=iso(past - timedelta(hours=1)),
    )
    await api.create()
    before = await api.metrics()
    refused = await problem(await api.join_resp("closed-room", "acc-1"), 409, "room-closed")
    assert "closed" in refused["detail"]
    assert rejected(before, await api.metrics(), "closed") == 1
    await problem(await api.join_resp("no-such-room", "acc-1"), 404, "not-found")

    url = f"/v1/rooms/{ROOM}/join"
    for headers in (
        {},
        bearer("garbage"),
        {"Authorization": f"Basic {tokens.account('acc-1')}"},
        bearer(tokens.account("acc-1", ttl_s=-100)),
        bearer(tokens.admin("rooms:write")),
    ):
        resp = await api.client.post(url, headers=headers)
        await problem(resp, 401, "unauthorized")
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await api.stats())["issued"] == 0


async def test_moving_opens_at_after_opening_never_reuses_a_number(api: Api) -> None:
    body = spec(paused=True)
    await api.put(ROOM, body, status=201)
    first = await api.join(ROOM, "acc-1")
    assert first["number"] == 0
    later = iso(datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1))
    resp = await api.client.put(
        f"/v1/admin/rooms/{ROOM}", json={**body, "opens_at": later}, headers=api.admin
    )
    # accepted, and the room stays open: it opened once (opened_at), a later opens_at does not
    # send it back to the pre-queue
    replaced = await ok(resp)
    assert replaced["phase"] == "open", replaced
    second = await api.join(ROOM, "acc-2")

    async def numbered() -> Json | None:
        st = await api.status(ROOM, second["ticket"])
        return st if st.get("number") is not None else None

    st = await eventually(numbered, "a number for the second joiner", within_s=3)
    assert st["number"] != first["number"]
