"""Malformed credentials over a raw loopback socket: bytes no HTTP client library would send
(non-UTF-8 header values, ill-shaped JWT headers) reach every route that reads a credential
and are answered 401 problem+json, counted ``malformed``, never a 500."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from guichet.errors import PROBLEM_CONTENT_TYPE
from guichet.state import SIGNER
from tests.conftest import Client, Tokens, metric_value

ROOM = "cred-room"
NOT_UTF8 = b"\xff\xfe\xc3("  # invalid UTF-8: aiohttp hands it on as lone surrogates


async def raw_request(client: Client, head: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``head`` (request line and headers, no body) as is; the status, headers, body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(head + b"Host: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    top, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = top.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def assert_401_problem(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert status == 401, body
    assert headers["content-type"].startswith(PROBLEM_CONTENT_TYPE), headers
    problem: dict[str, Any] = json.loads(body)
    assert problem["status"] == 401
    assert problem["type"] == "https://guichet.dev/problems/unauthorized"
    assert problem["detail"]
    return problem


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_header(token: str, **fields: Any) -> str:
    """``token`` with its JOSE header replaced (payload and signature kept)."""
    _, payload, signature = token.split(".")
    return f"{_b64(json.dumps(fields).encode())}.{payload}.{signature}"


async def create_room(client: Client, tokens: Tokens) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    body = {
        "opens_at": (now - timedelta(hours=1)).isoformat(),
        "closes_at": (now + timedelta(hours=2)).isoformat(),
        "rate_per_s": 1000.0,
        "max_active": 100,
        "audience": "shop.example",
        "target_url": "https://shop.example/checkout",
    }
    admin = {"Authorization": f"Bearer {tokens.admin('rooms:write')}"}
    resp = await client.put(f"/v1/admin/rooms/{ROOM}", json=body, headers=admin)
    assert resp.status == 201, await resp.text()


async def metric_total(client: Client, name: str, **labels: str) -> float:
    return metric_value(await (await client.get("/metrics")).text(), name, **labels)


async def test_non_utf8_credentials_are_401_on_every_route(
    client: Client, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    await create_room(client, tokens)
    account = f"Authorization: Bearer {tokens.account()}\r\n".encode()
    bad_bearer = b"Authorization: Bearer abc" + NOT_UTF8 + b"\r\n"
    bad_ticket = b"X-Queue-Ticket: abc" + NOT_UTF8 + b"\r\n"
    bad_cookie = f"Cookie: guichet_ticket_{ROOM}=abc".encode() + NOT_UTF8 + b"\r\n"
    room = f"/v1/rooms/{ROOM}".encode()
    cases = [
        (b"GET /v1/me HTTP/1.1\r\n" + bad_bearer, "auth"),
        (b"GET /v1/admin/rooms HTTP/1.1\r\n" + bad_bearer, "auth"),
        (b"POST " + room + b"/heartbeat HTTP/1.1\r\n" + bad_bearer, "room"),
        (b"GET " + room + b"/status HTTP/1.1\r\n" + bad_ticket, "room"),
        (b"GET " + room + b"/status HTTP/1.1\r\n" + bad_cookie, "room"),
        (b"POST " + room + b"/admit HTTP/1.1\r\n" + bad_bearer + bad_ticket, "auth"),
        (b"POST " + room + b"/admit HTTP/1.1\r\n" + account + bad_ticket, "room"),
        (b"POST " + room + b"/leave HTTP/1.1\r\n" + bad_bearer + bad_ticket, "auth"),
        (b"POST " + room + b"/leave HTTP/1.1\r\n" + account + bad_cookie, "room"),
        (b"GET " + room + b"/events HTTP/1.1\r\n" + bad_ticket, "room"),
        (b"GET " + room + b"/events HTTP/1.1\r\n" + bad_cookie, "room"),
        (b"GET " + room + b"/events?ticket=a%FF%FE HTTP/1.1\r\n", "room"),
    ]
    for head, counter in cases:
        name = (
            "guichet_auth_failures_total" if counter == "auth" else "guichet_room_rejections_total"
        )
        before = await metric_total(client, name, reason="malformed")
        assert_401_problem(*await raw_request(client, head))
        after = await metric_total(client, name, reason="malformed")
        assert after == before + 1, head
    assert await metric_total(client, "guichet_http_problems_total", type="internal") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "EdDSA", "typ": "JWT", "kid": 7},
        {"alg": "EdDSA", "typ": "JWT", "kid": ["a"]},
        {"alg": "EdDSA", "typ": "JWT", "kid": {"a": 1}},
        {"alg": "EdDSA", "typ": "JWT", "crit": ["exp"]},
        {"alg": "EdDSA", "typ": "JWT", "crit": "b64"},
        {"alg": "EdDSA", "typ": "JWT", "crit": []},
    ],
)
async def test_ill_shaped_jwt_headers_are_401_on_every_route(
    client: Client, tokens: Tokens, header: dict[str, Any]
) -> None:
    await create_room(client, tokens)
    signer = client.app[SIGNER]
    ticket = signer.sign(ROOM, "acc-1", "n:0:1", datetime.now(UTC).timestamp() + 3600)
    ill_account = with_header(tokens.account(), **header)
    ill_admin = with_header(tokens.admin("rooms:read"), **header)
    ill_ticket = with_header(ticket, **{**header, "alg": "HS256"})
    good = {"Authorization": f"Bearer {tokens.account()}"}
    room = f"/v1/rooms/{ROOM}"
    calls: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "/v1/me", {"Authorization": f"Bearer {ill_account}"}),
        ("GET", "/v1/admin/rooms", {"Authorization": f"Bearer {ill_admin}"}),
        ("POST", f"{room}/heartbeat", {"Authorization": f"Bearer {ill_account}"}),
        ("GET", f"{room}/status", {"X-Queue-Ticket": ill_ticket}),
        ("POST", f"{room}/admit", {**good, "X-Queue-Ticket": ill_ticket}),
        ("POST", f"{room}/leave", {**good, "X-Queue-Ticket": ill_ticket}),
        ("GET", f"{room}/events", {"X-Queue-Ticket": ill_ticket}),
    ]
    for method, path, headers in calls:
        resp = await client.request(method, path, headers=headers)
        body = await resp.read()
        assert_401_problem(resp.status, {"content-type": resp.headers["Content-Type"]}, body)
    assert await metric_total(client, "guichet_http_problems_total", type="internal") == 0


@pytest.mark.parametrize("tid", ["n:abc:1", "p::1", "n:1:x", "n:1:1:1", "q:1:1", "n:-1:1"])
async def test_signed_ticket_with_an_ill_shaped_tid_is_401_malformed(
    client: Client, tokens: Tokens, tid: str
) -> None:
    await create_room(client, tokens)
    secret = client.app[SIGNER]._secret  # the real key: the ticket is correctly signed
    claims = {
        "iss": client.app[SIGNER]._issuer,
        "aud": f"guichet-queue:{ROOM}",
        "sub": "acc-1",
        "tid": tid,
        "exp": int(datetime.now(UTC).timestamp()) + 3600,
    }
    ticket = jwt.encode(claims, secret, algorithm="HS256")
    before = await metric_total(client, "guichet_room_rejections_total", reason="malformed")
    resp = await client.get(f"/v1/rooms/{ROOM}/status", headers={"X-Queue-Ticket": ticket})
    assert_401_problem(
        resp.status, {"content-type": resp.headers["Content-Type"]}, await resp.read()
    )
    after = await metric_total(client, "guichet_room_rejections_total", reason="malformed")
    assert after == before + 1
