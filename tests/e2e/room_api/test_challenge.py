"""The proof-of-work door at join, over HTTP: a room with ``challenge_bits`` > 0 refuses a
join without a valid, unspent proof bound to the account and the room (403
``challenge-required`` with a fresh challenge), and changes nothing when it refuses."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import hypothesis
import jwt
from hypothesis import strategies as st

from guichet.room.challenge import (
    ALGORITHM,
    REASONS,
    SLUG,
    Challenger,
    challenge_key,
    meets,
    solve,
)
from guichet.store.client import Store
from guichet.store.keys import RoomKeys
from tests.conftest import Client, Tokens, metric_value
from tests.e2e.room_helpers import (
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

BITS = 8  # ~256 tries: a few milliseconds here


async def join_with(
    api: Api, account: str, body: Any = None, room: str = ROOM, raw: bytes | None = None
) -> aiohttp.ClientResponse:
    headers = bearer(api.tokens.account(account))
    if raw is not None:
        headers["Content-Type"] = "application/json"
        resp = await api.client.post(f"/v1/rooms/{room}/join", data=raw, headers=headers)
    elif body is None:
        resp = await api.client.post(f"/v1/rooms/{room}/join", headers=headers)
    else:
        resp = await api.client.post(f"/v1/rooms/{room}/join", json=body, headers=headers)
    await resp.read()
    return resp


async def challenged(resp: aiohttp.ClientResponse, reason: str) -> Json:
    """The 403 challenge-required problem with ``reason``; its fresh challenge."""
    body = await problem(resp, 403, SLUG)
    assert body["reason"] == reason, body
    offer: Json = body["challenge"]
    assert offer["algorithm"] == ALGORITHM
    assert offer["expires_at"].endswith("Z")
    assert offer["token"].count(".") == 2
    return offer


async def fresh(api: Api, account: str, room: str = ROOM) -> Json:
    return await challenged(await join_with(api, account, room=room), "missing")


def proof(offer: Json) -> Json:
    return {"challenge": offer["token"], "solution": solve(offer["token"], offer["bits"]),
            "solve_ms": 42}  # fmt: skip


async def nothing_issued(api: Api, room: str = ROOM) -> None:
    assert (await api.stats(room))["issued"] == 0


async def test_a_join_without_proof_gets_a_challenge_and_a_valid_proof_joins(api: Api) -> None:
    await api.create(challenge_bits=BITS)
    api.forget_cookies()
    offer = await fresh(api, "acc-1")
    assert offer["bits"] == BITS
    claims = claims_of(offer["token"])
    assert claims["sub"] == "acc-1"
    assert claims["bits"] == BITS
    await nothing_issued(api)

    before = await api.metrics()
    joined = await ok(await join_with(api, "acc-1", proof(offer)), 201)
    assert joined["created"] is True
    assert (await api.stats())["issued"] == 1
    after = await api.metrics()
    name = "guichet_room_challenges_total"
    assert metric_value(after, name, room=ROOM, outcome="solved") == 1 + metric_value(
        before, name, room=ROOM, outcome="solved"
    )
    solve = "guichet_room_challenge_solve_seconds_count"
    assert metric_value(after, solve, room=ROOM) == 1 + metric_value(before, solve, room=ROOM)
    assert metric_value(after, "guichet_room_challenge_failures_total", room=ROOM,
                        reason="missing") >= 1  # fmt: skip
    assert metric_value(after, name, room=ROOM, outcome="issued") >= 1


async def test_refused_proofs_change_nothing(api: Api, tokens: Tokens) -> None:
    await api.create(challenge_bits=BITS)
    await api.create("other-room", challenge_bits=BITS)
    api.forget_cookies()
    offer = await fresh(api, "acc-1")
    token = offer["token"]

    wrong = next(str(n) for n in range(10_000) if not meets(token, str(n), BITS))
    await challenged(await join_with(api, "acc-1", {"challenge": token, "solution": wrong}),
                     "wrong")  # fmt: skip

    forged_token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    forged = {"challenge": forged_token, "solution": solve(forged_token, BITS)}
    await challenged(await join_with(api, "acc-1", forged), "forged")
    not_a_token = {"challenge": "hello", "solution": "1"}
    await challenged(await join_with(api, "acc-1", not_a_token), "forged")

    # Someone else's challenge, solved, is no use to me; nor another room's.
    await challenged(await join_with(api, "acc-2", proof(offer)), "foreign")
    other_room = await fresh(api, "acc-1", room="other-room")
    await challenged(await join_with(api, "acc-1", proof(other_room)), "foreign")

    await nothing_issued(api)
    await nothing_issued(api, "other-room")

    # The valid proof joins once; replaying it (even after leaving) is refused.
    await ok(await join_with(api, "acc-1", proof(offer)), 201)
    api.forget_cookies()  # a replay by someone without the ticket the join set
    await challenged(await join_with(api, "acc-1", proof(offer)), "replayed")
    assert (await api.stats())["issued"] == 1


async def test_an_expired_challenge_is_refused(api: Api, tmp_path: Path) -> None:
    await api.create(challenge_bits=BITS)
    api.forget_cookies()
    await fresh(api, "acc-1")
    # A challenge signed with the server's own key (its secret file in the test's folder)
    # that expired a minute ago: what a client holding an old challenge sends.
    secret = (tmp_path / "ticket-secret").read_bytes().strip()
    old = Challenger(secret, "guichet", 120).issue(ROOM, "acc-1", BITS, time.time() - 180)
    expired = {"challenge": old.token, "solution": solve(old.token, BITS)}
    await challenged(await join_with(api, "acc-1", expired), "expired")
    # The same key, a live challenge: accepted (so the refusal above was the expiry).
    live = Challenger(secret, "guichet", 120).issue(ROOM, "acc-1", BITS, time.time())
    await ok(await join_with(api, "acc-1", {"challenge": live.token,
                                            "solution": solve(live.token, BITS)}), 201)  # fmt: skip


async def test_bits_zero_needs_no_proof_and_a_patch_applies_live(api: Api) -> None:
    await api.create()
    api.forget_cookies()
    await ok(await join_with(api, "acc-1"), 201)  # no body, as existing clients
    await api.patch(ROOM, challenge_bits=BITS)

    async def bits_now() -> int | None:
        resp = await join_with(api, "acc-2")
        if resp.status == 201:
            return None  # this worker has not reloaded the spec yet
        return int((await challenged(resp, "missing"))["bits"])

    assert await eventually(bits_now, "a challenge after the patch") == BITS
    await api.patch(ROOM, challenge_bits=BITS + 2)

    async def raised() -> int | None:
        offer = await challenged(await join_with(api, "acc-2"), "missing")
        return offer["bits"] if offer["bits"] == BITS + 2 else None

    offer = await eventually(raised, "a harder challenge after the second patch")
    assert offer == BITS + 2
    await api.patch(ROOM, challenge_bits=0)

    async def off() -> bool | None:
        resp = await join_with(api, "acc-3")
        return True if resp.status == 201 else None

    assert await eventually(off, "joins without proof once the door is off")


async def test_a_holder_rejoins_without_a_new_puzzle(api: Api) -> None:
    """A reloaded page shows its ticket (cookie or header) and gets it back with no proof;
    without it, or with another account's ticket, the door asks again and nothing is issued."""
    await api.create(challenge_bits=BITS)
    api.forget_cookies()
    first = await ok(await join_with(api, "acc-1", proof(await fresh(api, "acc-1"))), 201)
    assert (await api.stats())["issued"] == 1

    # The cookie the join set comes back with the next join: same ticket, no puzzle.
    again = await ok(await join_with(api, "acc-1"), 200)
    assert again["created"] is False
    assert claims_of(again["ticket"])["tid"] == claims_of(first["ticket"])["tid"]
    api.forget_cookies()
    headers = {**bearer(api.tokens.account("acc-1")), "X-Queue-Ticket": first["ticket"]}
    resp = await api.client.post(f"/v1/rooms/{ROOM}/join", headers=headers)
    assert (await ok(resp, 200))["created"] is False

    api.forget_cookies()
    await challenged(await join_with(api, "acc-1"), "missing")  # no ticket shown
    headers = {**bearer(api.tokens.account("acc-2")), "X-Queue-Ticket": first["ticket"]}
    resp = await api.client.post(f"/v1/rooms/{ROOM}/join", headers=headers)
    await challenged(resp, "missing")  # another account's ticket opens nothing
    assert (await api.stats())["issued"] == 1


async def test_a_rejecting_room_asks_no_puzzle_of_newcomers(api: Api) -> None:
    await api.create(challenge_bits=BITS)
    api.forget_cookies()
    held = await ok(await join_with(api, "acc-1", proof(await fresh(api, "acc-1"))), 201)
    await api.patch(ROOM, mode="reject")
    api.forget_cookies()

    async def rejecting() -> bool | None:
        return True if (await join_with(api, "acc-2")).status == 409 else None

    assert await eventually(rejecting, "a newcomer is told the room lets no one in")
    await problem(await join_with(api, "acc-2"), 409, "room-rejecting")
    headers = {**bearer(api.tokens.account("acc-1")), "X-Queue-Ticket": held["ticket"]}
    resp = await api.client.post(f"/v1/rooms/{ROOM}/join", headers=headers)
    kept = await ok(resp, 200)  # the holder keeps its place, no puzzle
    assert kept["mode"] == "reject"
    assert (await api.stats())["issued"] == 1


async def test_a_challenge_from_before_a_raise_is_refused(api: Api) -> None:
    await api.create(challenge_bits=BITS)
    api.forget_cookies()
    easy = await fresh(api, "acc-1")
    await api.patch(ROOM, challenge_bits=BITS + 4)

    async def harder() -> Json | None:
        offer = await challenged(await join_with(api, "acc-1"), "missing")
        return offer if offer["bits"] == BITS + 4 else None

    await eventually(harder, "the raised difficulty")
    await challenged(await join_with(api, "acc-1", proof(easy)), "expired")
    await nothing_issued(api)


async def test_bad_bodies_are_4xx_naming_the_field(api: Api) -> None:
    await api.create(challenge_bits=BITS)
    api.forget_cookies()
    offer = await fresh(api, "acc-1")
    for body, field in (
        ({"challenge": offer["token"], "solution": "12a"}, "solution"),
        ({"challenge": offer["token"], "solution": "1" * 21}, "solution"),
        ({"challenge": offer["token"], "solution": "1", "solve_ms": -1}, "solve_ms"),
        ({"challenge": offer["token"], "solution": "1", "solve_ms": 600_001}, "solve_ms"),
        ({"challenge": offer["token"], "solution": "1", "extra": 1}, "extra"),
        ({"solution": "1"}, "challenge"),
        ({"challenge": "x" * 1025, "solution": "1"}, "challenge"),
    ):
        body_json = await problem(await join_with(api, "acc-1", body), 422, "validation")
        assert body_json["errors"][0]["field"] == field, body_json
    await problem(await join_with(api, "acc-1", raw=b"{nope"), 400)
    headers = {**bearer(api.tokens.account("acc-1")), "Content-Type": "text/plain"}
    resp = await api.client.post(f"/v1/rooms/{ROOM}/join", data=b"x", headers=headers)
    await problem(resp, 415)
    await nothing_issued(api)


async def test_room_setting_is_validated(api: Api) -> None:
    for bits in (-1, 31, "8", True):
        resp = await api.client.patch(
            f"/v1/admin/rooms/{ROOM}", json={"challenge_bits": bits}, headers=api.admin
        )
        assert resp.status in (404, 422), await resp.text()
    await api.create()
    for bits in (-1, 31):
        resp = await api.client.patch(
            f"/v1/admin/rooms/{ROOM}", json={"challenge_bits": bits}, headers=api.admin
        )
        body = await problem(resp, 422, "validation")
        assert body["errors"][0]["field"] == "challenge_bits"


async def test_many_clients_replaying_one_proof_get_one_ticket(api: Api) -> None:
    await api.create(challenge_bits=BITS)
    api.forget_cookies()
    offer = await fresh(api, "acc-1")
    good = proof(offer)
    answers = await asyncio.gather(*(join_with(api, "acc-1", good) for _ in range(40)))
    statuses = sorted(r.status for r in answers)
    assert statuses.count(201) == 1, statuses
    # The others: replayed, or stopped by the account's join limit first (checked before).
    assert set(statuses) <= {201, 403, 429}, statuses
    for resp in answers:
        if resp.status == 403:
            assert (await resp.json(content_type=None))["reason"] == "replayed"
    assert (await api.stats())["issued"] == 1


_TEXT = st.text(max_size=80)
_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


@hypothesis.settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(
    body=st.one_of(
        st.binary(max_size=200),
        st.fixed_dictionaries(
            {"challenge": _TEXT, "solution": _TEXT},
            optional={"solve_ms": st.integers(-(2**70), 2**70)},
        ).map(lambda d: json.dumps(d).encode()),
        _JSONISH.map(lambda v: json.dumps(v).encode()),
    )
)
async def test_fuzzed_join_bodies_never_5xx(client: Client, tokens: Tokens, body: bytes) -> None:
    api = Api(client, tokens)
    if (await client.get(f"/v1/admin/rooms/{ROOM}", headers=api.admin)).status == 404:
        await api.create(challenge_bits=BITS)
    resp = await join_with(api, "fuzz", raw=body)
    assert resp.status in (400, 403, 413, 415, 422, 429), (resp.status, await resp.text())
    assert (await api.stats())["issued"] == 0


@hypothesis.settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(
    claims=st.dictionaries(
        st.sampled_from(["iss", "aud", "sub", "jti", "bits", "exp", "x"]),
        _JSONISH,
        max_size=7,
    ),
    server_key=st.booleans(),
    mutate=st.integers(0, 3),
)
async def test_fuzzed_challenge_tokens_never_5xx(
    client: Client,
    tokens: Tokens,
    tmp_path: Path,
    claims: dict[str, Any],
    server_key: bool,
    mutate: int,
) -> None:
    api = Api(client, tokens)
    if (await client.get(f"/v1/admin/rooms/{ROOM}", headers=api.admin)).status == 404:
        await api.create(challenge_bits=1)
    # Signed with the server's challenge key (claims of any shape), or with another key.
    secret = (tmp_path / "ticket-secret").read_bytes().strip()
    key = challenge_key(secret) if server_key else b"k" * 32
    try:
        token = jwt.encode(claims, key, algorithm="HS256")
    except (TypeError, ValueError):
        hypothesis.assume(False)
    if mutate == 1:
        token = token.replace(".", "..", 1)
    elif mutate == 2:
        token = token[: len(token) // 2]
    resp = await join_with(api, "fuzz", {"challenge": token, "solution": "0"})
    assert resp.status in (403, 422, 429), (resp.status, await resp.text())
    if resp.status == 403:
        assert (await resp.json(content_type=None))["reason"] in REASONS
    assert (await api.stats())["issued"] == 0


async def test_openapi_documents_the_proof_and_the_403(client: Client) -> None:
    doc = await ok(await client.get("/openapi.json"))
    op = doc["paths"]["/v1/rooms/{room}/join"]["post"]
    assert op["requestBody"]["required"] is False
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schemas = doc["components"]["schemas"]
    proof_schema = schemas[ref.rsplit("/", 1)[-1]]
    assert set(proof_schema["properties"]) == {"challenge", "solution", "solve_ms"}
    assert proof_schema["additionalProperties"] is False
    refused = op["responses"]["403"]["content"]["application/problem+json"]["schema"]["$ref"]
    body = schemas[refused.rsplit("/", 1)[-1]]
    assert {"reason", "challenge"} <= set(body["required"])
    assert schemas["RoomSpec"]["properties"]["challenge_bits"]["maximum"] == 30
    assert schemas["RoomPatch"]["properties"]["challenge_bits"]


async def test_a_body_is_no_proof_in_a_room_without_door_and_empty_ones_are_missing(
    api: Api,
) -> None:
    """Without the door the join reads no body (old clients send `{}` or form data); with it,
    `{}` and `null` are no proof: 403 with a challenge, not a 422."""
    await api.create()
    api.forget_cookies()
    await ok(await join_with(api, "acc-1", {}), 201)
    headers = {**bearer(api.tokens.account("acc-2")), "Content-Type": "text/plain"}
    resp = await api.client.post(f"/v1/rooms/{ROOM}/join", data=b"hello", headers=headers)
    await ok(resp, 201)
    await api.create("door-room", challenge_bits=BITS)
    api.forget_cookies()
    await challenged(await join_with(api, "acc-1", {}, room="door-room"), "missing")
    await challenged(await join_with(api, "acc-1", raw=b" null ", room="door-room"), "missing")
    await nothing_issued(api, "door-room")


async def test_a_held_ticket_makes_no_new_place_without_a_proof(api: Api, store: Store) -> None:
    """The store lost the account's place (a failover): its ticket, shown again, skips the
    puzzle in the worker but join.lua refuses a new place without a proof."""
    await api.create(challenge_bits=BITS)
    api.forget_cookies()
    first = await ok(await join_with(api, "acc-1", proof(await fresh(api, "acc-1"))), 201)
    await store.client.delete(RoomKeys(ROOM).tickets)
    headers = {**bearer(api.tokens.account("acc-1")), "X-Queue-Ticket": first["ticket"]}
    resp = await api.client.post(f"/v1/rooms/{ROOM}/join", headers=headers)
    offer = await challenged(resp, "missing")
    assert offer["bits"] == BITS
    assert (await api.stats())["issued"] == 1  # no second place
    await ok(await join_with(api, "acc-1", proof(offer)), 201)  # a proof gets one


async def test_a_proof_refused_for_another_reason_is_not_counted_solved(api: Api) -> None:
    await api.create(challenge_bits=BITS)
    api.forget_cookies()
    offer = await fresh(api, "acc-1")
    before = await api.metrics()
    now = datetime.now(UTC).replace(microsecond=0)
    closed = {
        "opens_at": iso(now - timedelta(hours=2)),
        "closes_at": iso(now - timedelta(seconds=10)),
    }
    await api.put(ROOM, spec(challenge_bits=BITS, **closed))
    await problem(await join_with(api, "acc-1", proof(offer)), 409, "room-closed")
    after = await api.metrics()
    name = "guichet_room_challenges_total"
    assert metric_value(after, name, room=ROOM, outcome="solved") == metric_value(
        before, name, room=ROOM, outcome="solved"
    )
