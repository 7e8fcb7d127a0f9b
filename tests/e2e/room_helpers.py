"""Helpers shared by the room API tests (tests/e2e/room_api/): the room spec, the calls
the tests make (``Api``), RFC 9457 problem checks, polling with a deadline, JWT tinkering."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp
import jwt
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from guichet.errors import PROBLEM_CONTENT_TYPE, TYPE_BASE
from tests.conftest import Client, Tokens, metric_value

Json = dict[str, Any]
T = TypeVar("T")

ROOM = "summer-tour"
AUDIENCE = "shop.example"
TARGET = "https://shop.example/checkout"
REJECTIONS = "guichet_room_rejections_total"
SSE_GAUGE = "guichet_room_sse_clients"
TICKET = "X-Queue-Ticket"
COOKIE = "guichet_ticket_"


# --- helpers ---------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def spec(**overrides: Any) -> Json:
    """A room open since an hour ago for two more hours, fast enough to be ready at once."""
    now = datetime.now(UTC).replace(microsecond=0)
    body: Json = {
        "opens_at": iso(now - timedelta(hours=1)),
        "closes_at": iso(now + timedelta(hours=2)),
        "rate_per_s": 1000.0,
        "max_active": 100,
        "audience": AUDIENCE,
        "target_url": TARGET,
    }
    body.update(overrides)
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def problem(resp: aiohttp.ClientResponse, status: int, slug: str | None = None) -> Json:
    """An RFC 9457 answer with ``status`` (and the problem type ``slug`` when given)."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == PROBLEM_CONTENT_TYPE, text
    body: Json = json.loads(text)
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert str(body["type"]).startswith(TYPE_BASE)
    if slug is not None:
        assert body["type"] == TYPE_BASE + slug, body
    return body


async def ok(resp: aiohttp.ClientResponse, status: int = 200) -> Json:
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "application/json", text
    body: Json = json.loads(text)
    return body


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, within_s: float = 10.0
) -> T:
    """Poll ``probe`` until it returns a value (not None), failing after ``within_s``."""
    try:
        async with asyncio.timeout(within_s):
            while True:
                value = await probe()
                if value is not None:
                    return value
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"no {what} within {within_s} s") from None


_B64 = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"


def flip_last_char(token: str) -> str:
    """The token with its last signature character changed in a bit that carries data (the
    low bits of the last base64url character may be padding, ignored by decoders)."""
    return token[:-1] + _B64[_B64.index(token[-1]) ^ 0b100000]


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def claims_of(token: str) -> Json:
    """The payload of a JWT, unverified (to look, never to trust)."""
    claims: Json = json.loads(_b64decode(token.split(".")[1]))
    return claims


def with_claims(token: str, **changes: Any) -> str:
    """The JWT with its payload re-encoded with ``changes``, header and signature kept."""
    head, _, signature = token.split(".")
    payload = {**claims_of(token), **changes}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    segment = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return f"{head}.{segment}.{signature}"


class Api:
    """The room calls the tests make, with the test's tokens."""

    def __init__(self, client: Client, tokens: Tokens) -> None:
        self.client = client
        self.tokens = tokens
        self.admin = bearer(tokens.admin("rooms:read", "rooms:write"))

    def forget_cookies(self) -> None:
        self.client.session.cookie_jar.clear()

    async def metrics(self) -> str:
        return await (await self.client.get("/metrics")).text()

    async def put(self, room: str, body: Json, status: int | None = None) -> Json:
        resp = await self.client.put(f"/v1/admin/rooms/{room}", json=body, headers=self.admin)
        if status is None:
            assert resp.status in (200, 201), await resp.text()
            return await ok(resp, resp.status)
        return await ok(resp, status)

    async def create(self, room: str = ROOM, **overrides: Any) -> Json:
        return await self.put(room, spec(**overrides))

    async def stats(self, room: str = ROOM) -> Json:
        return await ok(await self.client.get(f"/v1/admin/rooms/{room}", headers=self.admin))

    async def patch(self, room: str, **changes: Any) -> Json:
        return await ok(
            await self.client.patch(f"/v1/admin/rooms/{room}", json=changes, headers=self.admin)
        )

    async def join_resp(self, room: str, account: str) -> aiohttp.ClientResponse:
        resp = await self.client.post(
            f"/v1/rooms/{room}/join", headers=bearer(self.tokens.account(account))
        )
        await resp.read()
        return resp

    async def join(self, room: str = ROOM, account: str = "acc-1") -> Json:
        resp = await self.join_resp(room, account)
        assert resp.status in (200, 201), await resp.text()
        return await ok(resp, resp.status)

    async def status_resp(self, room: str, ticket: str) -> aiohttp.ClientResponse:
        resp = await self.client.get(f"/v1/rooms/{room}/status", headers={TICKET: ticket})
        await resp.read()
        return resp

    async def status(self, room: str, ticket: str) -> Json:
        return await ok(await self.status_resp(room, ticket))

    async def wait_state(
        self, room: str, ticket: str, *states: str, within_s: float = 10.0
    ) -> Json:
        async def probe() -> Json | None:
            body = await self.status(room, ticket)
            return body if body["state"] in states else None

        return await eventually(probe, f"a ticket of {room} in state {states}", within_s)

    async def admit_resp(self, room: str, account: str, ticket: str) -> aiohttp.ClientResponse:
        resp = await self.client.post(
            f"/v1/rooms/{room}/admit",
            headers={**bearer(self.tokens.account(account)), TICKET: ticket},
        )
        await resp.read()
        return resp

    async def admit(self, room: str, account: str, ticket: str) -> Json:
        return await ok(await self.admit_resp(room, account, ticket))

    async def leave_resp(self, room: str, account: str, ticket: str) -> aiohttp.ClientResponse:
        resp = await self.client.post(
            f"/v1/rooms/{room}/leave",
            headers={**bearer(self.tokens.account(account)), TICKET: ticket},
        )
        await resp.read()
        return resp

    async def heartbeat_resp(self, room: str, token: str) -> aiohttp.ClientResponse:
        resp = await self.client.post(f"/v1/rooms/{room}/heartbeat", headers=bearer(token))
        await resp.read()
        return resp

    async def ready_ticket(self, room: str = ROOM, account: str = "acc-1") -> str:
        """Join and wait until called (the room must be open and admitting)."""
        ticket = str((await self.join(room, account))["ticket"])
        await self.wait_state(room, ticket, "ready")
        return ticket

    async def jwks(self) -> jwt.PyJWKSet:
        resp = await self.client.get("/.well-known/jwks.json")
        body = await ok(resp)
        assert resp.headers["Cache-Control"] == "public, max-age=60"
        return jwt.PyJWKSet.from_dict(body)


def rejected(before: str, after: str, reason: str) -> float:
    return metric_value(after, REJECTIONS, reason=reason) - metric_value(
        before, REJECTIONS, reason=reason
    )


@contextlib.asynccontextmanager
async def served(
    build_app: Callable[..., web.Application], **rooms: object
) -> AsyncIterator[Client]:
    """A special app (see ``build_app``) served on a loopback socket."""
    app = await asyncio.to_thread(build_app, **rooms)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client
