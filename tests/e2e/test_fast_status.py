"""The status poll's fast path (``app.dispatcher``, ``server.fast_status``) over real sockets:
two workers on one Valkey, one matching ``GET /v1/rooms/{room}/status`` on its raw path, the
other through aiohttp's router; every answer is the same (status, headers, body), request
ids are present and unique, the HTTP metrics count it under the route's template."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from guichet import edge
from guichet.app import _status_room, create_app, dispatcher
from guichet.config import Settings
from tests.conftest import Backend, Tokens, make_settings, metric_value
from tests.e2e.room_helpers import TICKET, bearer, spec

ROOM = "fast-room"
OTHER = "fast-other"
ROUTE = "/v1/rooms/{room}/status"
#: Headers that differ between two answers by design.
_VARYING = {"date", "x-request-id"}


@asynccontextmanager
async def worker(settings_: Settings) -> AsyncIterator[str]:
    """One worker's app under the production runner and dispatcher; yields its base URL."""
    app = await asyncio.to_thread(create_app, settings_)
    runner = edge.make_runner(app, settings_.server, dispatcher, handle_signals=False,
                              access_log=None, shutdown_timeout=1)  # fmt: skip
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


class Pair:
    """A fast worker and a routed one, with a room, a ticket and a ticket of another room."""

    def __init__(self, fast: str, slow: str, http: aiohttp.ClientSession) -> None:
        self.fast, self.slow, self.http = fast, slow, http
        self.ticket = self.other_ticket = ""

    async def get(
        self, base: str, target: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        url = URL(base + target, encoded=True)
        async with self.http.request(method, url, headers=headers or {}) as resp:
            body = await resp.read()
            named = {k.lower(): v for k, v in resp.headers.items()}
            return resp.status, named, body

    async def both(
        self, target: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        """The fast worker's answer, once the routed worker gives the same (snapshots of the
        room may lag each other by a refresh)."""
        async with asyncio.timeout(10):
            while True:
                fast = await self.get(self.fast, target, headers, method)
                slow = await self.get(self.slow, target, headers, method)
                if fast[0] == slow[0] and fast[2] == slow[2]:
                    break
                await asyncio.sleep(0.05)
        same = {k: v for k, v in fast[1].items() if k not in _VARYING}
        assert same == {k: v for k, v in slow[1].items() if k not in _VARYING}
        assert fast[1]["x-request-id"]
        assert fast[1]["x-request-id"] != slow[1]["x-request-id"]
        return fast


@pytest.fixture
async def pair(tmp_path: Path, backend: Backend, tokens: Tokens) -> AsyncIterator[Pair]:
    fast_settings = await asyncio.to_thread(make_settings, tmp_path, backend.redis_section)
    server = msgspec.structs.replace(fast_settings.server, fast_status=False)
    slow_settings = msgspec.structs.replace(fast_settings, server=server)
    async with (
        worker(fast_settings) as fast,
        worker(slow_settings) as slow,
        aiohttp.ClientSession() as http,
    ):
        p = Pair(fast, slow, http)
        admin = bearer(tokens.admin("rooms:read", "rooms:write"))
        for room in (ROOM, OTHER):
            async with http.put(f"{fast}/v1/admin/rooms/{room}", json=spec(), headers=admin) as r:
                assert r.status == 201, await r.text()
        for room in (ROOM, OTHER):
            headers = bearer(tokens.account("acc-1"))
            async with http.post(f"{slow}/v1/rooms/{room}/join", headers=headers) as r:
                assert r.status == 201, await r.text()
                ticket = (await r.json())["ticket"]
            if room == ROOM:
                p.ticket = ticket
            else:
                p.other_ticket = ticket
        yield p


def status_path(room: str = ROOM) -> str:
    return f"/v1/rooms/{room}/status"


def problem(answer: tuple[int, dict[str, str], bytes], status: int) -> dict[str, Any]:
    assert answer[0] == status, answer
    assert answer[1]["content-type"].startswith("application/problem+json")
    decoded: dict[str, Any] = json.loads(answer[2])
    assert decoded["status"] == status
    return decoded


async def test_a_status_poll_is_answered_the_same_by_both_paths(pair: Pair) -> None:
    status, headers, body = await pair.both(status_path(), {TICKET: pair.ticket})
    assert status == 200
    assert json.loads(body)["room"] == ROOM
    assert headers["server"] == "guichet"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-type"].startswith("application/json")
    # a query string is ignored by both; the caller's request id comes back
    assert (await pair.both(status_path() + "?x=1", {TICKET: pair.ticket}))[0] == 200
    got = await pair.get(pair.fast, status_path(), {TICKET: pair.ticket, "X-Request-Id": "abc-1"})
    assert got[1]["x-request-id"] == "abc-1"


async def test_refusals_are_the_same_problems_on_both_paths(pair: Pair) -> None:
    missing = problem(await pair.both(status_path()), 401)
    assert TICKET in missing["detail"]
    forged = pair.ticket[:-2] + ("AA" if not pair.ticket.endswith("AA") else "BB")
    problem(await pair.both(status_path(), {TICKET: forged}), 401)
    problem(await pair.both(status_path(), {TICKET: pair.other_ticket}), 403)
    problem(await pair.both(status_path("no-such-room"), {TICKET: pair.ticket}), 404)
    bad_seen = problem(
        await pair.both(status_path(), {TICKET: pair.ticket, "X-Queue-Seen": "1.2.nope"}), 400
    )
    assert bad_seen["errors"][0]["field"] == "X-Queue-Seen"
    # what the fast match leaves to the router: other methods, escapes, odd rooms, a body
    wrong = problem(await pair.both(status_path(), {TICKET: pair.ticket}, method="POST"), 405)
    assert "GET" in wrong["detail"]
    assert (await pair.both(status_path(), {TICKET: pair.ticket}, method="HEAD"))[0] == 200
    escaped = "/v1/rooms/fast%2Droom/status"  # the router decodes it: the same room
    assert (await pair.both(escaped, {TICKET: pair.ticket}))[0] == 200
    problem(await pair.both("/v1/rooms/Fast.Room/status", {TICKET: pair.ticket}), 404)
    problem(await pair.both("/v1/rooms//status", {TICKET: pair.ticket}), 404)


async def test_many_concurrent_polls_get_unique_ids_and_are_all_counted(pair: Pair) -> None:
    async def scrape() -> str:
        async with pair.http.get(f"{pair.fast}/metrics") as resp:
            return await resp.text()

    def polls(text: str, status: str) -> float:
        return metric_value(text, "guichet_http_requests_total", route=ROUTE, method="GET",
                            status=status)  # fmt: skip

    before = await scrape()
    good, bad = 300, 50
    answers = await asyncio.gather(
        *(pair.get(pair.fast, status_path(), {TICKET: pair.ticket}) for _ in range(good)),
        *(pair.get(pair.fast, status_path()) for _ in range(bad)),
    )
    assert [a[0] for a in answers] == [200] * good + [401] * bad
    ids = {a[1]["x-request-id"] for a in answers}
    assert len(ids) == good + bad
    after = await scrape()  # /metrics flushes this process's counts first
    assert polls(after, "2xx") - polls(before, "2xx") == good
    assert polls(after, "4xx") - polls(before, "4xx") == bad
    refused = metric_value(after, "guichet_http_problems_total", type="unauthorized")
    assert refused - metric_value(before, "guichet_http_problems_total", type="unauthorized") == bad


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    room=st.one_of(
        st.text(max_size=30),
        st.from_regex(r"[a-z0-9-]{1,40}", fullmatch=True),
        st.sampled_from([ROOM, "", ".", "..", "%66ast-room", "fast-room/x", "a?b", "a#b"]),
    ),
    ticket=st.one_of(st.none(), st.text(max_size=80), st.sampled_from(["", "a.b.c", "...."])),
    seen=st.one_of(st.none(), st.text(max_size=30)),
)
async def test_any_room_path_and_ticket_header_is_4xx_at_worst_and_as_routed(
    pair: Pair, room: str, ticket: str | None, seen: str | None
) -> None:
    target = "/v1/rooms/" + "".join(
        c if c.isascii() and c.isprintable() and c not in " \\" else f"%{ord(c) % 256:02X}"
        for c in room
    ) + "/status"  # fmt: skip
    headers = {}
    for name, value in ((TICKET, ticket), ("X-Queue-Seen", seen)):
        if value is not None:  # what an HTTP header can carry
            headers[name] = "".join(c for c in value if " " <= c <= "~")
    status, _, _ = await pair.both(target, headers)
    assert status < 500


@given(path=st.text(max_size=60))
def test_the_fast_match_takes_only_plain_room_slugs(path: str) -> None:
    room = _status_room(path)
    if room is not None:
        assert path.partition("?")[0] == f"/v1/rooms/{room}/status"
        assert "/" not in room
        assert "%" not in room
        assert room.isascii()


def test_the_fast_path_stands_down_when_another_middleware_is_added(
    tmp_path: Path, backend: Backend
) -> None:
    """It hands the poll to ``front`` alone: with any other middleware in the chain it would
    skip that one, so the dispatcher then routes everything as aiohttp does."""
    app = create_app(make_settings(tmp_path, backend.redis_section))
    assert dispatcher(app) != app._handle  # the fast match is on by default

    @web.middleware
    async def extra(request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        return response

    app.middlewares.append(extra)
    assert dispatcher(app) == app._handle
