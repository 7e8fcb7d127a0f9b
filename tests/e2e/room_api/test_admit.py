"""Admission and heartbeats through the real app: not before the number is called, the
admission token verified with the JWKS, heartbeats keeping a session, a ready ticket lapsing.
The only timed waits are for expiries, which Redis's clock decides."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from aiohttp import web

from guichet.config import Settings
from tests.conftest import Tokens
from tests.e2e.room_helpers import (
    AUDIENCE,
    COOKIE,
    ROOM,
    Api,
    claims_of,
    flip_last_char,
    ok,
    problem,
    rejected,
    served,
)

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
