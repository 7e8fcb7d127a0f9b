"""The waiting room's HTTP contract through the real app (loopback socket, real Valkey): the
admin API and its refusals, join, status, admission tokens, leave, heartbeat, key rotation,
the SSE stream and the OpenAPI document. Waits poll the API with a deadline; the only timed
waits are for expiries, which Redis's clock decides."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from guichet.app import create_app
from guichet.config import Settings
from guichet.embedded import EmbeddedValkey
from guichet.errors import PROBLEM_CONTENT_TYPE, TYPE_BASE
from guichet.room.model import queue_order
from guichet.room.tickets import TicketSigner, ticket_secret
from guichet.signing import Keyring
from tests.conftest import MODE, Backend, Tokens, make_settings, metric_value

Client = TestClient[web.Request, web.Application]
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


@pytest.fixture
def api(client: Client, tokens: Tokens) -> Api:
    return Api(client, tokens)


def rejected(before: str, after: str, reason: str) -> float:
    return metric_value(after, REJECTIONS, reason=reason) - metric_value(
        before, REJECTIONS, reason=reason
    )


@pytest.fixture
def build_app(tmp_path: Path, backend: Backend) -> Callable[..., web.Application]:
    """An app whose ``rooms`` section has some values changed; call it in a thread (it reads
    key files). It shares the test's key files, so ``tokens`` work against it."""

    def build(**rooms: object) -> web.Application:
        return create_app(make_settings(tmp_path, backend.redis_section, rooms=rooms))

    return build


@contextlib.asynccontextmanager
async def served(
    build_app: Callable[..., web.Application], **rooms: object
) -> AsyncIterator[Client]:
    """A special app (see ``build_app``) served on a loopback socket."""
    app = await asyncio.to_thread(build_app, **rooms)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


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


# --- admin: bad bodies -------------------------------------------------------------------------

NOW = datetime.now(UTC).replace(microsecond=0)

BAD_SPECS: list[tuple[str, Json, str]] = [
    ("unknown field", spec(colour="red"), "colour"),
    ("wrong type", spec(rate_per_s="fast"), "rate_per_s"),
    ("negative rate", spec(rate_per_s=-1), "rate_per_s"),
    ("zero rate", spec(rate_per_s=0), "rate_per_s"),
    ("rate too high", spec(rate_per_s=100_001), "rate_per_s"),
    ("max_active 0", spec(max_active=0), "max_active"),
    ("max_active not an int", spec(max_active=1.5), "max_active"),
    ("missing field", {k: v for k, v in spec().items() if k != "audience"}, "audience"),
    ("ftp target", spec(target_url="ftp://shop.example/"), "target_url"),
    ("script target", spec(target_url="javascript:alert(1)"), "target_url"),
    ("bad mode", spec(mode="lottery"), "mode"),
    ("bad sale id", spec(sale="Tour 2030"), "sale"),
    ("idle timeout too short", spec(idle_timeout_s=1), "idle_timeout_s"),
    ("not a date", spec(opens_at="tomorrow"), "opens_at"),
]
BAD_WINDOWS: list[tuple[str, Json, str]] = [
    (
        "closes before opens",
        spec(opens_at=iso(NOW + timedelta(hours=2)), closes_at=iso(NOW + timedelta(hours=1))),
        "closes_at",
    ),
    (
        "closes when opens",
        spec(opens_at=iso(NOW + timedelta(hours=1)), closes_at=iso(NOW + timedelta(hours=1))),
        "closes_at",
    ),
    ("naive opens_at", spec(opens_at="2030-06-01T20:00:00"), "opens_at"),
    ("naive closes_at", spec(closes_at="2030-06-02T20:00:00"), "closes_at"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
async def test_put_refuses_a_bad_spec_naming_the_field(
    api: Api, case: str, body: Json, field: str
) -> None:
    await api.create(rate_per_s=77)
    before = await api.stats()
    resp = await api.client.put(f"/v1/admin/rooms/{ROOM}", json=body, headers=api.admin)
    refused = await problem(resp, 422, "validation")
    assert [e["field"] for e in refused["errors"]] == [field], refused
    assert (await api.stats())["spec"] == before["spec"]
    # nor is a new room created by a refused PUT
    resp = await api.client.put("/v1/admin/rooms/fresh-room", json=body, headers=api.admin)
    await problem(resp, 422, "validation")
    await problem(await api.client.get("/v1/admin/rooms/fresh-room", headers=api.admin), 404)


@pytest.mark.parametrize(("case", "body", "field"), BAD_WINDOWS, ids=[c[0] for c in BAD_WINDOWS])
async def test_put_refuses_a_bad_window_naming_the_field(
    api: Api, case: str, body: Json, field: str
) -> None:
    await api.create(rate_per_s=77)
    before = await api.stats()
    resp = await api.client.put(f"/v1/admin/rooms/{ROOM}", json=body, headers=api.admin)
    refused = await problem(resp, 422, "validation")
    assert field in refused["detail"]
    assert (await api.stats())["spec"] == before["spec"]


POST_INIT_ERRORS: list[tuple[str, str, Json, str]] = [
    *(("PUT", case, body, field) for case, body, field in BAD_WINDOWS),
    ("PATCH", "naive closes_at", {"closes_at": "2030-06-02T20:00:00"}, "closes_at"),
]


@pytest.mark.parametrize(
    ("method", "case", "body", "field"),
    POST_INIT_ERRORS,
    ids=[f"{c[0]} {c[1]}" for c in POST_INIT_ERRORS],
)
async def test_window_and_offset_errors_name_the_field_in_errors(
    api: Api, method: str, case: str, body: Json, field: str
) -> None:
    await api.create(rate_per_s=77)
    resp = await api.client.request(method, f"/v1/admin/rooms/{ROOM}", json=body, headers=api.admin)
    refused = await problem(resp, 422, "validation")
    assert [e["field"] for e in refused["errors"]] == [field], refused


BAD_PATCHES: list[tuple[str, Json, str]] = [
    ("closes before opens", {"closes_at": iso(NOW - timedelta(hours=3))}, "closes_at"),
    ("naive closes_at", {"closes_at": "2030-06-02T20:00:00"}, "closes_at"),
    ("opens_at is not live", {"opens_at": iso(NOW)}, "opens_at"),
    ("audience is not live", {"audience": "x"}, "audience"),
    ("zero rate", {"rate_per_s": 0}, "rate_per_s"),
    ("negative rate", {"rate_per_s": -5}, "rate_per_s"),
    ("max_active 0", {"max_active": 0}, "max_active"),
    ("paused not a bool", {"paused": "yes"}, "paused"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_PATCHES, ids=[c[0] for c in BAD_PATCHES])
async def test_patch_refuses_bad_changes_naming_the_field(
    api: Api, case: str, body: Json, field: str
) -> None:
    await api.create(rate_per_s=77)
    before = await api.stats()
    resp = await api.client.patch(f"/v1/admin/rooms/{ROOM}", json=body, headers=api.admin)
    refused = await problem(resp, 422, "validation")
    assert field in refused["detail"]
    assert [e["field"] for e in refused["errors"]] == [field], refused
    assert (await api.stats())["spec"] == before["spec"]


@pytest.mark.parametrize("body", [{}, {"paused": None, "rate_per_s": None}])
async def test_a_patch_that_changes_nothing_is_not_a_server_error(api: Api, body: Json) -> None:
    await api.create(rate_per_s=77)
    before = await api.stats()
    resp = await api.client.patch(f"/v1/admin/rooms/{ROOM}", json=body, headers=api.admin)
    assert resp.status in (200, 422), await resp.text()
    assert (await api.stats())["spec"] == before["spec"]


async def test_admin_refuses_bad_requests(api: Api, settings: Settings) -> None:
    await api.create(rate_per_s=77)
    before = await api.stats()
    url = f"/v1/admin/rooms/{ROOM}"
    headers = {**api.admin, "Content-Type": "application/json"}
    await problem(await api.client.put(url, data=b"{not json", headers=headers), 400, "malformed")
    await problem(await api.client.put(url, data=b"[1, 2]", headers=headers), 422, "validation")
    resp = await api.client.put(
        url,
        data=json.dumps(spec()).encode(),
        headers={**api.admin, "Content-Type": "text/plain"},
    )
    await problem(resp, 415, "unsupported-media-type")
    resp = await api.client.patch(url, data=b"rate_per_s=1", headers=api.admin)
    await problem(resp, 415, "unsupported-media-type")
    huge = json.dumps(spec(sale="x" * settings.server.max_body_bytes)).encode()
    await problem(await api.client.put(url, data=huge, headers=headers), 413, "body-too-large")
    assert (await api.stats())["spec"] == before["spec"]


BAD_ROOM_IDS = ["Summer-Tour", "salle-é", "été", "-leading", "a" * 49, "a_b", "a.b"]


@pytest.mark.parametrize("room", BAD_ROOM_IDS)
async def test_invalid_room_ids_are_404(api: Api, tokens: Tokens, room: str) -> None:
    base = f"/v1/admin/rooms/{room}"
    c = api.client
    refused = await problem(await c.put(base, json=spec(), headers=api.admin), 404, "not-found")
    assert "no room" in refused["detail"]  # refused by the handler, not unrouted
    await problem(await c.get(base, headers=api.admin), 404, "not-found")
    await problem(await c.patch(base, json={"paused": True}, headers=api.admin), 404, "not-found")
    await problem(await c.post(f"{base}/pause", headers=api.admin), 404, "not-found")
    await problem(await api.join_resp(room, "acc-1"), 404, "not-found")
    await problem(await c.get(f"/v1/rooms/{room}/status"), 404, "not-found")
    listed = await ok(await c.get("/v1/admin/rooms", headers=api.admin))
    assert listed["rooms"] == []


async def test_unknown_room_is_404_everywhere(api: Api) -> None:
    room = "no-such-room"
    c, admin = api.client, api.admin
    await problem(await c.get(f"/v1/admin/rooms/{room}", headers=admin), 404, "not-found")
    resp = await c.patch(f"/v1/admin/rooms/{room}", json={"paused": True}, headers=admin)
    await problem(resp, 404, "not-found")
    await problem(await c.post(f"/v1/admin/rooms/{room}/pause", headers=admin), 404)
    await problem(await c.post(f"/v1/admin/rooms/{room}/resume", headers=admin), 404)
    await problem(await api.join_resp(room, "acc-1"), 404, "not-found")
    await problem(await c.get(f"/v1/rooms/{room}/status", headers={TICKET: "x"}), 404)
    await problem(await c.get(f"/v1/rooms/{room}/events", headers={TICKET: "x"}), 404)
    # and the refusals created nothing
    await problem(await c.get(f"/v1/admin/rooms/{room}", headers=admin), 404, "not-found")


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


async def test_join_rate_limit_per_account(api: Api, settings: Settings) -> None:
    await api.create(paused=True)
    burst = settings.rooms.join_account_burst
    before = await api.metrics()
    for _ in range(burst):
        assert (await api.join_resp(ROOM, "acc-1")).status in (200, 201)
    resp = await api.join_resp(ROOM, "acc-1")
    refused = await problem(resp, 429, "rate-limited")
    interval = 60 / settings.rooms.join_per_account_per_min
    assert 1 <= refused["retry_after_s"] <= interval
    assert resp.headers["Retry-After"] == str(refused["retry_after_s"])
    after = await api.metrics()
    assert rejected(before, after, "rate_limit_account") == 1
    assert rejected(before, after, "rate_limit_ip") == 0
    assert (await api.join_resp(ROOM, "acc-2")).status == 201  # others are not held back


async def test_join_rate_limit_per_address(
    build_app: Callable[..., web.Application], tokens: Tokens
) -> None:
    async with served(
        build_app,
        join_per_ip_per_min=1,
        join_ip_burst=3,
        join_per_account_per_min=1,
        join_account_burst=1,
        client_ip_header="X-Forwarded-For",
    ) as client:
        api = Api(client, tokens)
        await api.create(paused=True)
        before = await api.metrics()
        assert (await api.join_resp(ROOM, "acc-1")).status == 201
        # the account's refusal charges neither bucket: the address still has two joins
        await problem(await api.join_resp(ROOM, "acc-1"), 429, "rate-limited")
        assert (await api.join_resp(ROOM, "acc-2")).status == 201
        assert (await api.join_resp(ROOM, "acc-3")).status == 201
        resp = await api.join_resp(ROOM, "acc-4")
        refused = await problem(resp, 429, "rate-limited")
        assert "address" in refused["detail"]
        assert 1 <= refused["retry_after_s"] <= 60
        assert resp.headers["Retry-After"] == str(refused["retry_after_s"])
        after = await api.metrics()
        assert rejected(before, after, "rate_limit_ip") == 1
        assert rejected(before, after, "rate_limit_account") == 1
        assert (await api.stats())["issued"] == 3

        async def join_from(forwarded: str, account: str) -> int:
            resp = await client.post(
                f"/v1/rooms/{ROOM}/join",
                headers={
                    **bearer(tokens.account(account)),
                    "X-Forwarded-For": forwarded,
                },
            )
            return resp.status

        # behind the proxy the last entry counts: a spoofed first entry changes nothing
        assert await join_from("198.51.100.1, 127.0.0.1", "acc-5") == 429
        assert await join_from("127.0.0.1, 203.0.113.7", "acc-5") == 201


async def test_moving_opens_at_after_opening_never_reuses_a_number(api: Api) -> None:
    body = spec(paused=True)
    await api.put(ROOM, body, status=201)
    first = await api.join(ROOM, "acc-1")
    assert first["number"] == 0
    later = iso(datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1))
    resp = await api.client.put(
        f"/v1/admin/rooms/{ROOM}", json={**body, "opens_at": later}, headers=api.admin
    )
    if resp.status in (409, 422):  # refusing to move the opening of an open room is fine
        await problem(resp, resp.status)
        return
    assert resp.status == 200, await resp.text()
    second = await api.join(ROOM, "acc-2")

    async def numbered() -> Json | None:
        st = await api.status(ROOM, second["ticket"])
        return st if st.get("number") is not None else None

    st = await eventually(numbered, "a number for the second joiner", within_s=3)
    assert st["number"] != first["number"]


# --- status ----------------------------------------------------------------------------------


async def test_status_by_header_and_by_cookie(api: Api) -> None:
    await api.create(paused=True)
    await api.join(ROOM, "acc-0")
    api.forget_cookies()
    joined = await api.join(ROOM, "acc-1")  # the client's jar now holds the cookie
    url = f"/v1/rooms/{ROOM}/status"
    by_jar = await ok(await api.client.get(url))
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


async def test_status_refusals_are_counted_by_reason(
    api: Api, settings: Settings, tokens: Tokens
) -> None:
    await api.create(paused=True)
    await api.create("room-b", paused=True)
    ticket = (await api.join(ROOM, "acc-1"))["ticket"]
    other = (await api.join("room-b", "acc-1"))["ticket"]
    secret = await asyncio.to_thread(ticket_secret, settings.rooms)
    signer = TicketSigner(secret, settings.rooms.admission_issuer, 10)
    tid = claims_of(ticket)["tid"]
    long_ago = (datetime.now(UTC) - timedelta(days=30)).timestamp()
    wrong_secret = TicketSigner(b"s" * 32, settings.rooms.admission_issuer, 10)
    cases: list[tuple[str, str, int, str]] = [
        ("forged signature", flip_last_char(ticket), 401, "forged"),
        ("other tid", with_claims(ticket, tid="n:0:1"), 401, "forged"),
        ("other account", with_claims(ticket, sub="acc-2"), 401, "forged"),
        ("other room claim", with_claims(ticket, aud="guichet-queue:room-b"), 401, "forged"),
        ("wrong secret", wrong_secret.sign(ROOM, "acc-1", tid, 2_000_000_000), 401, "forged"),
        ("not a jwt", "not-a-jwt", 401, "malformed"),
        ("too long", ticket + "A" * 2048, 401, "malformed"),
        (
            "no tid",
            jwt.encode(
                {"iss": settings.rooms.admission_issuer, "aud": f"guichet-queue:{ROOM}",
                 "sub": "acc-1", "exp": 2_000_000_000},
                secret,
                algorithm="HS256",
            ),
            401,
            "malformed",
        ),
        ("expired", signer.sign(ROOM, "acc-1", tid, closes_at=long_ago), 401, "expired"),
        ("other room", other, 403, "other_room"),
    ]  # fmt: skip
    api.forget_cookies()
    for case, forged, status, reason in cases:
        before = await api.metrics()
        resp = await api.status_resp(ROOM, forged)
        await problem(resp, status)
        assert rejected(before, await api.metrics(), reason) == 1, case
    before = await api.metrics()
    resp = await api.client.get(f"/v1/rooms/{ROOM}/status")
    refused = await problem(resp, 401, "unauthorized")
    assert TICKET in refused["detail"]
    assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_request"'
    assert rejected(before, await api.metrics(), "missing") == 1
    # the genuine ticket still works, and a refused one was not cached as good
    assert (await api.status(ROOM, ticket))["number"] == 0
    await problem(await api.status_resp(ROOM, flip_last_char(ticket)), 401)


# --- admit, leave, heartbeat -----------------------------------------------------------------


async def test_admit_before_the_number_is_called_is_409(api: Api) -> None:
    await api.create(paused=True)
    ticket = (await api.join(ROOM, "acc-1"))["ticket"]
    before = await api.metrics()
    resp = await api.admit_resp(ROOM, "acc-1", ticket)
    refused = await problem(resp, 409, "not-ready")
    assert int(resp.headers["Retry-After"]) >= 1
    assert refused["retry_after_s"] == int(resp.headers["Retry-After"])
    assert rejected(before, await api.metrics(), "not_ready") == 1
    assert (await api.stats())["active"] == 0


async def test_admission_token_verifies_with_the_jwks(api: Api, settings: Settings) -> None:
    await api.create(audience="tickets.example", target_url="https://shop.example/buy?step=1")
    ticket = await api.ready_ticket(ROOM, "acc-1")
    api.forget_cookies()
    resp = await api.admit_resp(ROOM, "acc-1", ticket)
    admission = await ok(resp)
    assert admission["room"] == ROOM
    token = admission["token"]
    assert admission["redirect_url"] == f"https://shop.example/buy?step=1&guichet_token={token}"
    assert admission["ticket"] != ticket
    assert resp.cookies[COOKIE + ROOM].value == admission["ticket"]
    assert resp.cookies[COOKIE + ROOM]["httponly"] is True

    keys = await api.jwks()
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    claims = jwt.decode(
        token,
        keys[header["kid"]].key,
        algorithms=["EdDSA"],
        audience="tickets.example",
        issuer=settings.rooms.admission_issuer,
        options={"require": ["exp", "iat", "sub", "aud", "iss"]},
    )
    assert claims["sub"] == "acc-1"
    assert claims["room"] == ROOM
    assert claims["sid"] == f"{ROOM}:0"
    assert 0 < claims["exp"] - claims["iat"] <= 300
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, keys[header["kid"]].key, algorithms=["EdDSA"], audience=AUDIENCE)
    assert (await api.stats())["active"] == 1
    assert (await api.stats())["admitted_total"] == 1

    # the re-issued ticket says admitted; asking again (old or new ticket) is the same session
    assert (await api.status(ROOM, admission["ticket"]))["state"] == "admitted"
    for again_with in (ticket, admission["ticket"]):
        again = await api.admit(ROOM, "acc-1", again_with)
        assert claims_of(again["token"])["sid"] == claims["sid"]
        assert again["session_expires_at"] == admission["session_expires_at"]
    stats = await api.stats()
    assert stats["active"] == 1
    assert stats["admitted_total"] == 1


async def test_a_ticket_only_works_with_its_own_account(api: Api, tokens: Tokens) -> None:
    await api.create()
    ticket = await api.ready_ticket(ROOM, "acc-1")
    before = await api.metrics()
    await problem(await api.admit_resp(ROOM, "acc-2", ticket), 403, "forbidden")
    await problem(await api.leave_resp(ROOM, "acc-2", ticket), 403, "forbidden")
    assert rejected(before, await api.metrics(), "wrong_account") == 2
    resp = await api.client.post(f"/v1/rooms/{ROOM}/admit", headers={TICKET: ticket})
    await problem(resp, 401, "unauthorized")
    assert (await api.stats())["active"] == 0
    await api.admit(ROOM, "acc-1", ticket)  # the owner still can


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


async def test_heartbeat(api: Api, tokens: Tokens) -> None:
    await api.create()
    await api.create("room-b")  # same audience
    await api.create("room-c", audience="elsewhere.example")
    ticket = await api.ready_ticket(ROOM, "acc-1")
    admission = await api.admit(ROOM, "acc-1", ticket)
    token = admission["token"]
    beat = await ok(await api.heartbeat_resp(ROOM, token))
    assert beat["room"] == ROOM
    assert moment(beat["session_expires_at"]) >= moment(admission["session_expires_at"])

    before = await api.metrics()
    await problem(await api.heartbeat_resp(ROOM, flip_last_char(token)), 401, "unauthorized")
    await problem(await api.heartbeat_resp(ROOM, tokens.account("acc-1")), 401, "unauthorized")
    await problem(await api.heartbeat_resp("room-b", token), 403, "forbidden")
    await problem(await api.heartbeat_resp("room-c", token), 401, "unauthorized")
    await problem(await api.client.post(f"/v1/rooms/{ROOM}/heartbeat"), 401, "unauthorized")
    after = await api.metrics()
    assert rejected(before, after, "forged") == 3
    assert rejected(before, after, "other_room") == 1
    assert rejected(before, after, "missing") == 1

    # a token of room B does not keep a session in room A alive, nor the other way round
    other = await api.ready_ticket("room-b", "acc-2")
    other_token = (await api.admit("room-b", "acc-2", other))["token"]
    await problem(await api.heartbeat_resp(ROOM, other_token), 403, "forbidden")
    assert (await api.heartbeat_resp("room-b", other_token)).status == 200

    assert (await api.leave_resp(ROOM, "acc-1", admission["ticket"])).status == 200
    await problem(await api.heartbeat_resp(ROOM, token), 409, "session-ended")


def moment(rfc3339: str) -> datetime:
    return datetime.fromisoformat(rfc3339)


async def wait_until(when: datetime) -> None:
    """Let the clock pass ``when``: expiries are decided by Redis TIME, nothing to poll."""
    await asyncio.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))


async def test_a_ready_ticket_lapses_after_the_grace_period(
    build_app: Callable[..., web.Application], tokens: Tokens
) -> None:
    async with served(build_app, ready_grace_s=10) as client:
        api = Api(client, tokens)
        await api.create()
        ticket = await api.ready_ticket(ROOM, "acc-1")
        lapsed = await api.wait_state(ROOM, ticket, "expired", within_s=20)
        assert lapsed["number"] == 0
        before = await api.metrics()
        await problem(await api.admit_resp(ROOM, "acc-1", ticket), 409, "ticket-expired")
        assert rejected(before, await api.metrics(), "expired") == 1
        assert (await api.stats())["active"] == 0


async def test_an_admitted_ticket_stays_admitted_while_heartbeats_keep_the_session(
    api: Api,
) -> None:
    await api.create(idle_timeout_s=10)
    ticket = await api.ready_ticket(ROOM, "acc-1")
    admission = await api.admit(ROOM, "acc-1", ticket)
    first_expiry = moment(admission["session_expires_at"])
    await wait_until(first_expiry - timedelta(seconds=5))
    beat = await ok(await api.heartbeat_resp(ROOM, admission["token"]))
    assert moment(beat["session_expires_at"]) > first_expiry + timedelta(seconds=4)
    await wait_until(first_expiry + timedelta(seconds=1))
    alive = await api.admit(ROOM, "acc-1", ticket)  # the same session, still active
    assert alive["session_expires_at"] == beat["session_expires_at"]
    assert (await api.status(ROOM, admission["ticket"]))["state"] == "admitted"


async def test_heartbeats_keep_a_session_alive_past_its_first_idle_timeout(api: Api) -> None:
    await api.create(idle_timeout_s=10, token_ttl_s=30)
    ticket = await api.ready_ticket(ROOM, "acc-1")
    admission = await api.admit(ROOM, "acc-1", ticket)
    token = admission["token"]
    keep_until = moment(admission["session_expires_at"]) + timedelta(seconds=2)
    while datetime.now(UTC) < keep_until:  # the protected site's heartbeat, every 0.5 s
        resp = await api.heartbeat_resp(ROOM, token)
        beat = await ok(resp)
        token = beat.get("token", token)  # a fix may hand out a fresh token: use it
        await asyncio.sleep(0.5)
    assert (await api.stats())["active"] == 1


# --- admission keys --------------------------------------------------------------------------


async def test_key_rotation_keeps_old_tokens_verifiable(api: Api, settings: Settings) -> None:
    await api.create()
    ticket = await api.ready_ticket(ROOM, "acc-1")
    old = (await api.admit(ROOM, "acc-1", ticket))["token"]
    old_kid = jwt.get_unverified_header(old)["kid"]
    assert [k.key_id for k in (await api.jwks()).keys] == [old_kid]

    def rotate() -> None:
        Keyring(settings.rooms.signing_key_dir).rotate()

    await asyncio.to_thread(rotate)

    async def two_keys() -> jwt.PyJWKSet | None:
        keys = await api.jwks()
        return keys if len(keys.keys) == 2 else None

    keys = await eventually(two_keys, "the rotated key in the JWKS")
    new_kid = str(keys.keys[0].key_id)  # the active key comes first
    assert new_kid != old_kid
    assert keys.keys[1].key_id == old_kid

    claims = jwt.decode(
        old,
        keys[old_kid].key,
        algorithms=["EdDSA"],
        audience=AUDIENCE,
        issuer=settings.rooms.admission_issuer,
    )
    assert claims["sub"] == "acc-1"
    assert (await api.heartbeat_resp(ROOM, old)).status == 200

    second = await api.ready_ticket(ROOM, "acc-2")
    fresh = (await api.admit(ROOM, "acc-2", second))["token"]
    assert jwt.get_unverified_header(fresh)["kid"] == new_kid
    jwt.decode(fresh, keys[new_kid].key, algorithms=["EdDSA"], audience=AUDIENCE)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(fresh, keys[old_kid].key, algorithms=["EdDSA"], audience=AUDIENCE)
    again = (await api.admit(ROOM, "acc-1", ticket))["token"]  # the same session, new key
    assert jwt.get_unverified_header(again)["kid"] == new_kid
    assert claims_of(again)["sid"] == claims["sid"]


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


# --- OpenAPI ---------------------------------------------------------------------------------

ROOM_ROUTES = [
    ("post", "/v1/rooms/{room}/join", "accountBearer"),
    ("get", "/v1/rooms/{room}/status", None),
    ("get", "/v1/rooms/{room}/events", None),
    ("post", "/v1/rooms/{room}/admit", "accountBearer"),
    ("post", "/v1/rooms/{room}/leave", "accountBearer"),
    ("post", "/v1/rooms/{room}/heartbeat", "admissionBearer"),
    ("get", "/.well-known/jwks.json", None),
    ("get", "/v1/admin/rooms", "adminBearer"),
    ("get", "/v1/admin/rooms/{room}", "adminBearer"),
    ("put", "/v1/admin/rooms/{room}", "adminBearer"),
    ("patch", "/v1/admin/rooms/{room}", "adminBearer"),
    ("post", "/v1/admin/rooms/{room}/pause", "adminBearer"),
    ("post", "/v1/admin/rooms/{room}/resume", "adminBearer"),
    ("put", "/v1/admin/rooms/{room}/stock", "adminBearer"),
]


async def test_openapi_documents_the_room_api(client: Client) -> None:
    doc = await ok(await client.get("/openapi.json"))
    validate(doc)
    for method, path, security in ROOM_ROUTES:
        op = doc["paths"][path][method]
        assert op["summary"], (method, path)
        if security is None:
            assert "security" not in op, (method, path)
        else:
            assert op["security"] == [{security: []}], (method, path)
        if "{room}" in path:
            assert op["parameters"][0]["name"] == "room"
    schemas = doc["components"]["schemas"]
    for name in (
        "RoomSpec",
        "RoomPatch",
        "StockSignal",
        "RoomStats",
        "RoomList",
        "Status",
        "Joined",
        "Admission",
        "Left",
        "Session",
        "Jwks",
    ):
        assert name in schemas, name
    assert schemas["RoomSpec"]["additionalProperties"] is False
    assert set(schemas["RoomSpec"]["required"]) == {
        "opens_at",
        "closes_at",
        "rate_per_s",
        "max_active",
        "audience",
        "target_url",
    }
    assert "prequeue" in schemas["Status"]["properties"]["state"]["enum"]

    def ref(path: str, method: str, status: str, media: str = "application/json") -> Any:
        return doc["paths"][path][method]["responses"][status]["content"][media]["schema"]

    room = "/v1/admin/rooms/{room}"
    assert ref(room, "put", "201") == {"$ref": "#/components/schemas/RoomStats"}
    assert doc["paths"][room]["put"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RoomSpec"
    }
    assert doc["paths"][room]["patch"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RoomPatch"
    }
    assert {"400", "401", "403", "413", "415", "422"} <= set(doc["paths"][room]["put"]["responses"])
    assert ref("/v1/rooms/{room}/join", "post", "201") == {"$ref": "#/components/schemas/Joined"}
    assert {"401", "404", "409", "429"} <= set(
        doc["paths"]["/v1/rooms/{room}/join"]["post"]["responses"]
    )
    assert ref("/v1/rooms/{room}/status", "get", "200") == {"$ref": "#/components/schemas/Status"}
    assert ref("/v1/rooms/{room}/admit", "post", "200") == {
        "$ref": "#/components/schemas/Admission"
    }
    assert {"401", "403", "409"} <= set(doc["paths"]["/v1/rooms/{room}/admit"]["post"]["responses"])
    assert ref("/v1/rooms/{room}/events", "get", "200", "text/event-stream") == {"type": "string"}


async def test_openapi_says_heartbeat_takes_the_admission_token(client: Client) -> None:
    doc = await ok(await client.get("/openapi.json"))
    op = doc["paths"]["/v1/rooms/{room}/heartbeat"]["post"]
    assert op["security"] == [{"admissionBearer": []}]  # not the account token it refuses
    scheme = doc["components"]["securitySchemes"]["admissionBearer"]
    assert scheme["scheme"] == "bearer"
    assert "401" in op["responses"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Session"
    }


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
