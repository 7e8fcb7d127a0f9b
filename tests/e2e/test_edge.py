"""The HTTP edge over a real socket, under the production runner (``edge.make_runner``):
header limits (431), header and body timeouts (408), protocol errors as problem+json, the
response headers, the ticket cookie's ``Secure``, and the SSE slot caps (429)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guichet import edge, streams
from guichet.app import create_app
from guichet.errors import PROBLEM_CONTENT_TYPE
from tests.conftest import Backend, Tokens, make_settings, metric_value
from tests.e2e.room_helpers import bearer, spec
from tests.e2e.test_shop_http import catalogue

ROOM = "edge-room"
SALE = "edge-sale"


@asynccontextmanager
async def served(
    tmp_path: Path, backend: Backend, **sections: dict[str, Any]
) -> AsyncIterator[str]:
    """The app under the production runner on a loopback port; yields its base URL."""
    settings_ = await asyncio.to_thread(make_settings, tmp_path, backend.redis_section, **sections)
    app = await asyncio.to_thread(create_app, settings_)
    runner = edge.make_runner(app, settings_.server, handle_signals=False, access_log=None,
                              shutdown_timeout=1)  # fmt: skip
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def raw(url: str, data: bytes, *, then: bytes = b"", within: float = 20) -> bytes:
    """Send ``data`` (then ``then``) on a fresh connection; everything the server answers
    until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(url))
    try:
        writer.write(data)
        if then:
            writer.write(then)
        await writer.drain()
        async with asyncio.timeout(within):
            return await reader.read()  # until EOF: the server closes
    finally:
        writer.close()


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def problem_of(answer: bytes, status: int) -> dict[str, Any]:
    got, headers, body = parse(answer)
    assert got == status, answer[:500]
    assert headers["content-type"].startswith(PROBLEM_CONTENT_TYPE), headers
    assert headers["x-content-type-options"] == "nosniff"
    decoded: dict[str, Any] = json.loads(body)
    assert decoded["status"] == status
    return decoded


GET = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


# --- header size ---------------------------------------------------------------------------


async def test_a_megabyte_of_headers_is_431_and_changes_nothing(
    tmp_path: Path, backend: Backend
) -> None:
    async with served(tmp_path, backend) as url:
        flood = b"".join(b"X-F%d: %s\r\n" % (i, b"a" * 8000) for i in range(120))
        refused = problem_of(await raw(url, GET + flood + b"\r\n"), 431)
        assert "server.max_header_bytes" in refused["detail"]
        # each limit alone: the total, one line, the count
        four_k = b"".join(b"X-F%d: %s\r\n" % (i, b"a" * 4000) for i in range(10))
        problem_of(await raw(url, GET + four_k + b"\r\n"), 431)
        problem_of(await raw(url, GET + b"X-Long: " + b"a" * 9000 + b"\r\n\r\n"), 431)
        many = b"".join(b"X-F%d: a\r\n" % i for i in range(70))
        problem_of(await raw(url, GET + many + b"\r\n"), 431)
        problem_of(await raw(url, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n"), 431)
        async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
            text = await resp.text()
        assert (
            metric_value(text, "guichet_http_edge_refusals_total", reason="headers_too_large") >= 5
        )
        # a normal request with ordinary headers still passes
        async with aiohttp.ClientSession() as http:
            ok = await http.get(f"{url}/healthz", headers={f"X-H{i}": "v" * 200 for i in range(40)})
            assert ok.status == 200


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    method=st.sampled_from([b"GET", b"POST", b"PUT", b"BREW", b"G\x00T", b""]),
    target=st.binary(max_size=40),
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9.9", b"HTTP/1.1 x", b""]),
    headers=st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=60)), max_size=8),
)
async def test_any_request_head_gets_an_answer_never_a_5xx(
    edge_url: str, method: bytes, target: bytes, version: bytes,
    headers: list[tuple[bytes, bytes]],
) -> None:  # fmt: skip
    head = method + b" /" + target.replace(b"\r", b"").replace(b"\n", b"") + b" " + version
    lines = [head] + [n + b": " + v for n, v in headers]
    data = b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n"
    answer = await raw(edge_url, data, within=10)
    if not answer:
        return  # closed without an answer (e.g. a head that never ends): no 5xx either
    status, _, _ = parse(answer)
    assert status < 500, answer[:400]
    if status >= 400:
        assert b"application/problem+json" in answer.split(b"\r\n\r\n")[0].lower(), answer[:400]


@pytest.fixture
async def edge_url(tmp_path: Path, backend: Backend) -> AsyncIterator[str]:
    async with served(tmp_path, backend) as url:
        yield url


# --- timeouts ------------------------------------------------------------------------------


async def test_a_slow_head_is_408_and_a_slow_body_is_408(
    tmp_path: Path, backend: Backend, tokens: Tokens
) -> None:
    server = {"header_timeout_s": 0.5, "body_timeout_s": 0.5, "keepalive_timeout_s": 60}
    async with served(tmp_path, backend, server=server) as url:
        # a head that never ends: cut at the header deadline although the keep-alive is long
        refused = problem_of(await raw(url, GET + b"X-Slow: a"), 408)
        assert "server.header_timeout_s" in refused["detail"]
        # a body that never ends: the handler's read gives up
        admin = tokens.admin("rooms:write").encode()
        put = (b"PUT /v1/admin/rooms/" + ROOM.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Authorization: Bearer " + admin + b"\r\nContent-Type: application/json\r\n"
               b"Content-Length: 200\r\n\r\n{")  # fmt: skip
        refused = problem_of(await raw(url, put), 408)
        assert "server.body_timeout_s" in refused["detail"]
        async with aiohttp.ClientSession() as http:
            resp = await http.get(f"{url}/v1/admin/rooms/{ROOM}", headers=bearer(
                tokens.admin("rooms:read")))  # fmt: skip
            assert resp.status == 404  # nothing was created
            text = await (await http.get(f"{url}/metrics")).text()
        for reason in ("header_timeout", "body_timeout"):
            assert metric_value(text, "guichet_http_edge_refusals_total", reason=reason) >= 1


# --- response headers and the cookie -------------------------------------------------------


async def test_answers_say_nosniff_and_no_versions(edge_url: str, tokens: Tokens) -> None:
    async with aiohttp.ClientSession(edge_url) as http:
        for path in ("/healthz", "/v1/rooms/nope/status", "/openapi.json"):
            async with http.get(path) as resp:
                await resp.read()
                assert resp.headers["X-Content-Type-Options"] == "nosniff", path
                assert resp.headers["Server"] == "guichet", path
                assert "Python" not in resp.headers["Server"]


async def join_cookie(url: str, tokens: Tokens, host: str | None = None) -> str:
    async with aiohttp.ClientSession(url) as http:
        admin = bearer(tokens.admin("rooms:write"))
        resp = await http.put(f"/v1/admin/rooms/{ROOM}", json=spec(paused=True), headers=admin)
        assert resp.status in (200, 201), await resp.text()
        headers = bearer(tokens.account("acc-1"))
        if host is not None:
            headers["Host"] = host
        resp = await http.post(f"/v1/rooms/{ROOM}/join", headers=headers)
        assert resp.status in (200, 201), await resp.text()
        return resp.headers["Set-Cookie"]


@pytest.mark.parametrize(
    ("setting", "host", "secure"),
    [
        (True, None, True),  # the default (test_config), even on http://127.0.0.1:PORT
        (True, "127.0.0.1:8080", True),  # what nginx sends by default: no guess from the Host
        (True, "tickets.example", True),
        (True, "localhost:8080", True),
        (False, "tickets.example", False),  # plain HTTP, said by the configuration
    ],
)
async def test_the_ticket_cookie_is_secure_unless_configured_for_plain_http(
    tmp_path: Path,
    backend: Backend,
    tokens: Tokens,
    setting: bool | None,
    host: str | None,
    secure: bool,
) -> None:
    rooms = {} if setting is None else {"cookie_secure": setting}
    async with served(tmp_path, backend, rooms=rooms) as url:
        cookie = await join_cookie(url, tokens, host)
    assert cookie.startswith(f"guichet_ticket_{ROOM}=")
    assert ("; Secure" in cookie) is secure, cookie


# --- SSE slots -----------------------------------------------------------------------------


async def open_stream(http: aiohttp.ClientSession, path: str, **headers: str) -> Any:
    resp = await http.get(path, headers=headers)
    if resp.status == 200:
        await resp.content.readline()  # the stream is open and counted
    return resp


async def refused(resp: aiohttp.ClientResponse, limit: str) -> None:
    body = await resp.json(content_type=None)
    assert resp.status == 429, body
    assert resp.content_type == PROBLEM_CONTENT_TYPE
    assert resp.headers["Retry-After"] == "5"
    assert limit in body["detail"], body


async def setup_sale(http: aiohttp.ClientSession, tokens: Tokens) -> None:
    admin = bearer(tokens.admin("sales:write"))
    resp = await http.put(f"/v1/admin/sales/{SALE}", json={}, headers=admin)
    assert resp.status in (200, 201), await resp.text()
    resp = await http.put(f"/v1/admin/sales/{SALE}/catalogue", json=catalogue(sessions=1),
                          headers=admin)  # fmt: skip
    assert resp.status == 200, await resp.text()


async def test_sse_slots_per_ticket_per_address_and_one_count_for_room_and_shop(
    tmp_path: Path, backend: Backend, tokens: Tokens
) -> None:
    rooms = {"sse_max_clients": 4, "sse_max_per_address": 3, "sse_max_per_ticket": 1,
             "client_ip_header": "X-Forwarded-For"}  # fmt: skip
    async with served(tmp_path, backend, rooms=rooms) as url, aiohttp.ClientSession(url) as http:
        admin = bearer(tokens.admin("rooms:write"))
        resp = await http.put(f"/v1/admin/rooms/{ROOM}", json=spec(paused=True), headers=admin)
        assert resp.status == 201
        tickets = []
        for account in ("acc-1", "acc-2"):
            resp = await http.post(
                f"/v1/rooms/{ROOM}/join", headers=bearer(tokens.account(account))
            )
            tickets.append((await resp.json())["ticket"])
        http.cookie_jar.clear()
        events = f"/v1/rooms/{ROOM}/events"
        a = {"X-Forwarded-For": "203.0.113.1"}  # as a local proxy says
        b = {"X-Forwarded-For": "203.0.113.2"}
        first = await open_stream(http, events, **{"X-Queue-Ticket": tickets[0]}, **a)
        assert first.status == 200
        # one ticket, one stream: from another address too
        await refused(await open_stream(http, events, **{"X-Queue-Ticket": tickets[0]}, **b),
                      "rooms.sse_max_per_ticket")  # fmt: skip
        second = await open_stream(http, events, **{"X-Queue-Ticket": tickets[1]}, **a)
        await setup_sale(http, tokens)
        shop = f"/v1/sales/{SALE}/availability/events"
        third = await open_stream(http, shop, **a)
        assert (second.status, third.status) == (200, 200)
        # address a holds 3 (room and shop together): its fourth is refused, b's is not
        await refused(await open_stream(http, shop, **a), "rooms.sse_max_per_address")
        fourth = await open_stream(http, shop, **b)
        assert fourth.status == 200
        # 4 open in all: the worker's one count is full, room and shop alike
        await refused(await open_stream(http, shop, **{"X-Forwarded-For": "198.51.100.9"}),
                      "rooms.sse_max_clients")  # fmt: skip
        first.close()

        async def slot_freed() -> bool:
            while True:
                resp = await open_stream(http, shop, **b)
                if resp.status == 200:
                    resp.close()
                    return True
                await resp.read()
                await asyncio.sleep(0.05)  # the server notices the closed stream

        async with asyncio.timeout(10):
            assert await slot_freed()
        text = await (await http.get("/metrics")).text()
        for limit in ("ticket", "address", "server"):
            assert metric_value(text, "guichet_sse_refusals_total", limit=limit) >= 1
        for stream in (second, third, fourth):
            stream.close()


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    tmp_path: Path, backend: Backend, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    streams._UNTRUSTED_WARNED = False  # once per worker: this test is the worker's first
    rooms = {"sse_max_per_address": 1, "client_ip_header": "X-Forwarded-For",
             "trusted_proxies": ["10.0.0.0/8"]}  # fmt: skip
    async with served(tmp_path, backend, rooms=rooms) as url, aiohttp.ClientSession(url) as http:
        await setup_sale(http, tokens)
        shop = f"/v1/sales/{SALE}/availability/events"
        first = await open_stream(http, shop, **{"X-Forwarded-For": "203.0.113.1"})
        assert first.status == 200
        # 127.0.0.1 is not a trusted proxy here: a made-up header changes nothing
        await refused(await open_stream(http, shop, **{"X-Forwarded-For": "203.0.113.2"}),
                      "rooms.sse_max_per_address")  # fmt: skip
        first.close()
    warned = [r for r in caplog.records if "untrusted peer" in r.getMessage()]
    assert len(warned) == 1, warned  # ops hear of it, once
    assert warned[0].levelname == "WARNING"
    assert "trusted_proxies" in warned[0].getMessage()


async def test_a_refused_head_never_echoes_the_credential(edge_url: str) -> None:
    """aiohttp puts the offending bytes in its parser error; the problem keeps its first line."""
    secret = "eyJsecretpart.eyJclaims.signaturebytes"
    data = f"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\x01\r\n\r\n"
    answer = await raw(edge_url, data.encode())
    body = problem_of(answer, 400)
    assert body["type"].endswith("malformed"), body
    for part in secret.split("."):
        assert part.encode() not in answer, answer


async def test_a_non_utf8_content_type_is_415_naming_it(edge_url: str, tokens: Tokens) -> None:
    """The raw header's bytes never go into the problem (they may not even encode)."""
    token = tokens.admin("rooms:write")
    data = (
        f"PUT /v1/admin/rooms/ct HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Length: 2\r\nConnection: close\r\nContent-Type: application/\xff\r\n\r\n{}"
    ).encode("latin-1")
    body = problem_of(await raw(edge_url, data), 415)
    assert body["errors"][0]["field"] == "Content-Type", body
