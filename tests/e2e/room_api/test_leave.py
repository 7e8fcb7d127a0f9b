"""Leaving a room through the real app: a full room, then a leave frees the slot."""

from __future__ import annotations

from tests.e2e.room_helpers import COOKIE, ROOM, Api, ok, problem, rejected


async def test_room_full_then_leave_frees_the_slot(api: Api) -> None:
    await api.create(max_active=2)
    first = await api.ready_ticket(ROOM, "acc-1")
    second = await api.ready_ticket(ROOM, "acc-2")
    await api.patch(ROOM, max_active=1)
    admitted = await api.admit(ROOM, "acc-1", first)
    before = await api.metrics()
    resp = await api.admit_resp(ROOM, "acc-2", second)
    await problem(resp, 409, "room-full")
    assert resp.headers["Retry-After"] == "1"
    assert rejected(before, await api.metrics(), "full") == 1
    assert (await api.stats())["active"] == 1

    resp = await api.leave_resp(ROOM, "acc-1", admitted["ticket"])
    left = await ok(resp)
    assert left == {"room": ROOM, "state": "left"}
    assert resp.cookies[COOKIE + ROOM].value == ""  # the cookie is cleared
    assert (await api.stats())["active"] == 0
    assert (await api.leave_resp(ROOM, "acc-1", admitted["ticket"])).status == 200  # again: ok

    await problem(await api.admit_resp(ROOM, "acc-1", first), 409, "session-ended")
    await api.admit(ROOM, "acc-2", second)  # the freed slot is taken
    assert (await api.stats())["active"] == 1
