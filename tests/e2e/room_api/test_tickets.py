"""Queue tickets and admission keys through the real app: forged, expired and misdirected
tickets refused and counted by reason, a ticket bound to its account, key rotation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from guichet.config import Settings
from guichet.room.tickets import TicketSigner, ticket_secret
from guichet.signing import Keyring
from tests.conftest import Tokens
from tests.e2e.room_helpers import (
    AUDIENCE,
    ROOM,
    TICKET,
    Api,
    claims_of,
    eventually,
    flip_last_char,
    problem,
    rejected,
    with_claims,
)


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


# --- admission keys --------------------------------------------------------------------------


async def test_key_rotation_keeps_old_tokens_verifiable(api: Api, settings: Settings) -> None:
    await api.create()
    ticket = await api.ready_ticket(ROOM, "acc-1")
    old = (await api.admit(ROOM, "acc-1", ticket))["token"]
    old_kid = jwt.get_unverified_header(old)["kid"]
    # the JWKS also publishes the e-ticket keys (their `aud` keeps the two apart): set aside
    ring = await asyncio.to_thread(Keyring, settings.etickets.signing_key_dir)
    tickets = {str(k["kid"]) for k in ring.published()}

    async def admission_jwks() -> list[jwt.PyJWK]:
        return [k for k in (await api.jwks()).keys if k.key_id not in tickets]

    assert [k.key_id for k in await admission_jwks()] == [old_kid]

    def rotate() -> None:
        Keyring(settings.rooms.signing_key_dir).rotate()

    await asyncio.to_thread(rotate)

    async def two_keys() -> list[jwt.PyJWK] | None:
        keys = await admission_jwks()
        return keys if len(keys) == 2 else None

    keys = await eventually(two_keys, "the rotated key in the JWKS")
    new_kid = str(keys[0].key_id)  # the active key comes first
    assert new_kid != old_kid
    assert keys[1].key_id == old_kid
    by_kid = {k.key_id: k for k in keys}

    claims = jwt.decode(
        old,
        by_kid[old_kid].key,
        algorithms=["EdDSA"],
        audience=AUDIENCE,
        issuer=settings.rooms.admission_issuer,
    )
    assert claims["sub"] == "acc-1"
    assert (await api.heartbeat_resp(ROOM, old)).status == 200

    second = await api.ready_ticket(ROOM, "acc-2")
    fresh = (await api.admit(ROOM, "acc-2", second))["token"]
    assert jwt.get_unverified_header(fresh)["kid"] == new_kid
    jwt.decode(fresh, by_kid[new_kid].key, algorithms=["EdDSA"], audience=AUDIENCE)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(fresh, by_kid[old_kid].key, algorithms=["EdDSA"], audience=AUDIENCE)
    again = (await api.admit(ROOM, "acc-1", ticket))["token"]  # the same session, new key
    assert jwt.get_unverified_header(again)["kid"] == new_kid
    assert claims_of(again)["sid"] == claims["sid"]
