"""A ticket's status through the real app: by header and cookie, the pre-queue and its
published shuffle seed, and answers from the snapshot while Redis is down."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from guichet.app import create_app
from guichet.embedded import EmbeddedValkey
from guichet.room.model import queue_order
from tests.conftest import MODE, Tokens, make_settings
from tests.e2e.room_helpers import (
    COOKIE,
    ROOM,
    Api,
    Json,
    bearer,
    claims_of,
    eventually,
    iso,
    ok,
    problem,
    spec,
)

# --- status ----------------------------------------------------------------------------------


async def test_status_by_header_and_by_cookie(api: Api) -> None:
    await api.create(paused=True)
    await api.join(ROOM, "acc-0")
    url = f"/v1/rooms/{ROOM}/status"
    # The ticket cookie is Secure by default (not in these tests): a browser sends it back over
    # https, or to loopback, which it treats as a secure origin. This jar does the same.
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=api.client.make_url("/"))
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        resp = await browser.post(
            api.client.make_url(f"/v1/rooms/{ROOM}/join"),
            headers=bearer(api.tokens.account("acc-1")),
        )
        joined = await ok(resp, 201)  # the jar now holds the cookie
        by_jar = await ok(await browser.get(api.client.make_url(url)))
    by_header = await api.status(ROOM, joined["ticket"])
    api.forget_cookies()
    by_cookie = await ok(
        await api.client.get(url, headers={"Cookie": f"{COOKIE}{ROOM}={joined['ticket']}"})
    )
    for body in (by_jar, by_header, by_cookie):
        assert body["room"] == ROOM
        assert body["state"] == "waiting"
        assert body["number"] == 1
        assert body["position"] == 2
        assert body["ahead"] == 1
        assert body["serving"] == 0
        assert body["poll_after_ms"] >= 1000
        assert "ticket" not in body
    # a cookie of another room is not this room's ticket
    resp = await api.client.get(url, headers={"Cookie": f"{COOKIE}other={joined['ticket']}"})
    await problem(resp, 401, "unauthorized")


async def test_prequeue_then_numbers_drawn_from_the_published_seed(api: Api) -> None:
    opens = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=120)
    body = spec(opens_at=iso(opens), paused=True)
    await api.put(ROOM, body, status=201)
    joined = [await api.join(ROOM, f"acc-{i}") for i in range(5)]
    assert {j["state"] for j in joined} == {"prequeue"}
    tickets = [j["ticket"] for j in joined]
    for ticket in tickets:
        st = await api.status(ROOM, ticket)
        assert st["state"] == "prequeue"
        assert "number" not in st  # none yet: drawn at opening
        assert 110 <= st["eta_s"] <= 120
        assert st["opens_at"] == iso(opens)
    resp = await api.admit_resp(ROOM, "acc-0", tickets[0])
    await problem(resp, 409, "not-ready")
    assert resp.headers["Retry-After"] == "1"
    assert (await api.stats())["prequeue"] == 5
    assert (await api.stats())["shuffle_seed"] is None  # not published before opening

    opened = await api.put(ROOM, {**body, "opens_at": iso(opens - timedelta(hours=1))})
    assert opened["phase"] == "open"
    seed = opened["shuffle_seed"]
    assert isinstance(seed, str)
    assert len(bytes.fromhex(seed)) == 32
    # (in a thread, as the server does: NumPy may hold its lock there at this very moment)
    order = await asyncio.to_thread(queue_order, bytes.fromhex(seed), 5, "shuffle-then-fifo")
    numbers = []
    for ticket in tickets:

        async def numbered(ticket: str = ticket) -> Json | None:
            st = await api.status(ROOM, ticket)
            return st if st.get("number") is not None else None

        st = await eventually(numbered, "the shuffled number")
        index = int(claims_of(ticket)["tid"].split(":")[1])
        assert st["number"] == int(order[index])
        assert st["state"] == "waiting"
        assert st["position"] == st["number"] + 1
        assert st["ahead"] == st["number"]
        numbers.append(st["number"])
    assert sorted(numbers) == [0, 1, 2, 3, 4]
    late = await api.join(ROOM, "acc-late")
    assert late["number"] == 5  # later arrivals follow the pre-queue


# --- Redis down ------------------------------------------------------------------------------


@pytest.mark.skipif(MODE == "cluster", reason="stops a standalone Valkey; nothing cluster-wide")
async def test_status_is_answered_from_the_snapshot_while_redis_is_down(
    tmp_path: Path, private_valkey: EmbeddedValkey, tokens: Tokens
) -> None:
    redis_section = {"url": private_valkey.url, "connect_timeout_s": 0.5}
    settings = await asyncio.to_thread(make_settings, tmp_path, redis_section)
    app = await asyncio.to_thread(create_app, settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        api = Api(client, tokens)
        await api.create(paused=True)
        ticket = (await api.join(ROOM, "acc-1"))["ticket"]
        await asyncio.to_thread(private_valkey.stop)

        st = await api.status(ROOM, ticket)  # no Redis round trip
        assert (st["state"], st["number"], st["position"]) == ("waiting", 0, 1)
        resp = await api.join_resp(ROOM, "acc-2")
        await problem(resp, 503, "unavailable")
        assert resp.headers["Retry-After"] == "1"
        await problem(await api.admit_resp(ROOM, "acc-1", ticket), 503, "unavailable")

        await asyncio.to_thread(private_valkey.start)

        async def joined() -> Json | None:
            resp = await api.join_resp(ROOM, "acc-2")
            return await ok(resp, 201) if resp.status != 503 else None

        assert (await eventually(joined, "a join once Redis is back"))["number"] == 1
        assert (await api.join(ROOM, "acc-1"))["ticket"] == ticket  # nothing was lost
