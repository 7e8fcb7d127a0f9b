"""The room's server-sent events through the real app: status changes streamed, the ticket
from the query, refusals, the stream limit, and closed streams counted out."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import aiohttp
from aiohttp import web

from tests.conftest import Tokens, metric_value
from tests.e2e.room_helpers import (
    COOKIE,
    ROOM,
    SSE_GAUGE,
    TICKET,
    Api,
    Json,
    bearer,
    eventually,
    ok,
    problem,
    rejected,
    served,
    spec,
)

# --- server-sent events ----------------------------------------------------------------------


async def next_event(resp: aiohttp.ClientResponse) -> tuple[str, Json]:
    """The next SSE message (comments skipped), within 10 s: its event name and JSON data."""
    event, data = "message", list[str]()
    async with asyncio.timeout(10):
        while True:
            raw = await resp.content.readline()
            if not raw:
                raise AssertionError("the stream ended")
            line = raw.decode().rstrip("\r\n")
            if not line:
                if data:
                    return event, json.loads("\n".join(data))
                event = "message"
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


async def test_events_stream_status_changes(api: Api) -> None:
    await api.create(paused=True)
    await api.join(ROOM, "acc-0")
    await api.join(ROOM, "acc-1")
    ticket = (await api.join(ROOM, "acc-2"))["ticket"]
    api.forget_cookies()
    before = await api.metrics()
    async with api.client.get(
        f"/v1/rooms/{ROOM}/events", headers={"Cookie": f"{COOKIE}{ROOM}={ticket}"}
    ) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        assert resp.headers["Cache-Control"] in ("no-store", "no-cache")
        event, first = await next_event(resp)
        assert event == "status"
        assert first["state"] == "waiting"
        assert first["number"] == 2
        assert first["position"] == 3
        opened = await api.metrics()
        assert metric_value(opened, SSE_GAUGE) - metric_value(before, SSE_GAUGE) == 1

        await ok(await api.client.post(f"/v1/admin/rooms/{ROOM}/resume", headers=api.admin))
        seen = [first]
        while seen[-1]["state"] != "ready":
            event, later = await next_event(resp)
            assert event == "status"
            assert later["state"] in ("waiting", "ready"), later
            if later["state"] == "waiting":
                assert later["position"] <= seen[-1]["position"]
            seen.append(later)
        assert seen[-1]["position"] == 0
        assert seen[-1]["serving"] >= 3

    async def closed() -> bool | None:
        now = await api.metrics()
        gauge = metric_value(now, SSE_GAUGE)
        return True if gauge == metric_value(before, SSE_GAUGE) else None

    await eventually(closed, "the stream to be counted out")


async def test_events_take_the_ticket_from_the_query(api: Api) -> None:
    await api.create(paused=True)
    ticket = (await api.join(ROOM, "acc-1"))["ticket"]
    api.forget_cookies()
    async with api.client.get(f"/v1/rooms/{ROOM}/events", params={"ticket": ticket}) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/event-stream"
        event, first = await next_event(resp)
        assert (event, first["number"], first["state"]) == ("status", 0, "waiting")
        # admitted is a final state: the stream says so and ends
        await ok(await api.client.post(f"/v1/admin/rooms/{ROOM}/resume", headers=api.admin))
        await api.wait_state(ROOM, ticket, "ready")
        admission = await api.admit(ROOM, "acc-1", ticket)
    api.forget_cookies()
    async with api.client.get(
        f"/v1/rooms/{ROOM}/events", params={"ticket": admission["ticket"]}
    ) as resp:
        event, last = await next_event(resp)
        assert last["state"] == "admitted"
        async with asyncio.timeout(10):
            assert await resp.content.read() == b""  # the server closed the stream


async def test_events_refusals(api: Api) -> None:
    await api.create(paused=True)
    await api.create("room-b", paused=True)
    other = (await api.join("room-b", "acc-1"))["ticket"]
    api.forget_cookies()
    before = await api.metrics()
    resp = await api.client.get(f"/v1/rooms/{ROOM}/events")
    await problem(resp, 401, "unauthorized")
    resp = await api.client.get(f"/v1/rooms/{ROOM}/events", params={"ticket": "nope"})
    await problem(resp, 401, "unauthorized")
    resp = await api.client.get(f"/v1/rooms/{ROOM}/events", params={"ticket": other})
    await problem(resp, 403, "forbidden")
    after = await api.metrics()
    assert rejected(before, after, "missing") == 1
    assert rejected(before, after, "malformed") == 1
    assert rejected(before, after, "other_room") == 1
    assert metric_value(after, SSE_GAUGE) == metric_value(before, SSE_GAUGE)


async def test_events_over_the_stream_limit_are_429(
    build_app: Callable[..., web.Application], tokens: Tokens
) -> None:
    async with served(build_app, sse_max_clients=0) as client:
        api = Api(client, tokens)
        await api.create(paused=True)
        ticket = (await api.join(ROOM, "acc-1"))["ticket"]
        resp = await client.get(f"/v1/rooms/{ROOM}/events", headers={TICKET: ticket})
        refused = await problem(resp, 429, "rate-limited")
        assert resp.headers["Retry-After"] == str(refused["retry_after_s"])
        assert "status" in refused["detail"]


async def test_a_closed_stream_is_counted_out_under_the_production_runner(
    build_app: Callable[..., web.Application], tokens: Tokens
) -> None:
    app = await asyncio.to_thread(build_app)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1, access_log=None)
    await runner.setup()  # as guichet.server._run builds it
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            admin = bearer(tokens.admin("rooms:write"))
            resp = await session.put(
                f"/v1/admin/rooms/{ROOM}", json=spec(paused=True), headers=admin
            )
            assert resp.status == 201, await resp.text()
            resp = await session.post(
                f"/v1/rooms/{ROOM}/join", headers=bearer(tokens.account("acc-1"))
            )
            ticket = (await resp.json())["ticket"]
            before = metric_value(await (await session.get("/metrics")).text(), SSE_GAUGE)
            resp = await session.get(f"/v1/rooms/{ROOM}/events", headers={TICKET: ticket})
            await next_event(resp)
            assert metric_value(await (await session.get("/metrics")).text(), SSE_GAUGE) == (
                before + 1
            )
            resp.close()  # the browser tab goes away

            async def counted_out() -> bool | None:
                text = await (await session.get("/metrics")).text()
                return True if metric_value(text, SSE_GAUGE) == before else None

            await eventually(counted_out, "the closed stream to be counted out", within_s=5)
    finally:
        await runner.cleanup()
