"""The protected site ends a session (issue 18, item 3): ``POST /v1/rooms/{room}/revoke`` with
its own scope frees the slot at once, the sale's and the draw's gates refuse the token within
a few pacer ticks, the heartbeat refuses it, the ticket is never admitted again. Real Valkey,
real HTTP socket; over HTTP only (they run against ``guichet serve --workers 2`` too)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from guichet.config import Settings
from guichet.errors import TYPE_BASE
from guichet.room.guard import ADMISSION_HEADER
from guichet.signing import Keyring
from guichet.store.client import Store
from guichet.store.keys import audit_chain
from tests.conftest import Backend, Client, Tokens, make_settings, metric_value
from tests.e2e.room_helpers import (
    Api,
    bearer,
    claims_of,
    eventually,
    flip_last_char,
    ok,
    problem,
)
from tests.e2e.test_draw_http import CONSENT
from tests.e2e.test_draw_http import spec as draw_spec
from tests.e2e.test_room_cli import run_cli, write_config
from tests.e2e.test_room_guard import ROOM, admitted, hold, link, linked_sale, refused
from tests.served import SERVE

OTHER = "other-room"
DRAW = "d1"
URL = f"/v1/rooms/{ROOM}/revoke"
#: The pacer ticks every 0.2 s: a revocation reaches every worker's guard within a few ticks.
TICK_BOUND_S = 1.5
REVOCATIONS = "guichet_room_revocations_total"


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(
        tmp_path,
        backend.redis_section,
        shop={"refresh_interval_s": 0.05},
        rooms={"join_per_ip_per_min": 1_000_000, "join_ip_burst": 10_000},
    )


@pytest.fixture
def api(client: Client, tokens: Tokens) -> Api:
    return Api(client, tokens)


def site(tokens: Tokens) -> dict[str, str]:
    """The protected site's credential: an admin bearer with ``rooms:revoke`` only."""
    return bearer(tokens.admin("rooms:revoke"))


async def revoke(client: Client, tokens: Tokens, body: Any, room: str = ROOM) -> Any:
    return await client.post(f"/v1/rooms/{room}/revoke", json=body, headers=site(tokens))


async def active(api: Api) -> int:
    return int((await api.stats(ROOM))["active"])


async def refused_within_ticks(probe: Any, what: str) -> dict[str, Any]:
    """The gate's refusal, polled with a deadline of a few pacer ticks (no fixed sleep)."""
    body: dict[str, Any] = await eventually(probe, what, within_s=TICK_BOUND_S)
    return body


async def test_a_revoked_token_frees_the_slot_at_once_and_every_door_closes(
    client: Client, tokens: Tokens, store: Store, api: Api
) -> None:
    await linked_sale(client, tokens, store, api)
    admission, ticket = await admitted(api, "fan")
    token = admission["token"]
    assert (await hold(client, tokens, "fan", token, key="k1"))[0] == 201
    assert await active(api) == 1
    before = await api.metrics()

    resp = await revoke(client, tokens, {"token": token, "reason": "misbehaved"})
    body = await ok(resp)
    assert body["room"] == ROOM
    assert (body["state"], body["freed"], body["already"]) == ("revoked", True, False)
    revoked_at = body["revoked_at"]
    assert revoked_at.endswith("Z")
    assert abs(time.time() - _epoch(revoked_at)) < 60
    assert await active(api) == 0  # at once: the admin's stats read after the script
    if SERVE == "inprocess":  # worker processes: /metrics is one worker's
        after = await api.metrics()
        for reason, added in (("misbehaved", 1), ("finished", 0)):
            labels = {"room": ROOM, "reason": reason}
            counted = metric_value(after, REVOCATIONS, **labels)
            assert counted - metric_value(before, REVOCATIONS, **labels) == added

    async def gone() -> dict[str, Any] | None:
        status, held = await hold(client, tokens, "fan", token)
        return held if status == 403 else None

    refused(403, await refused_within_ticks(gone, "the revoked session refused"), "ended")

    resp = await api.heartbeat_resp(ROOM, token)
    await problem(resp, 409, "session-ended")
    await problem(await api.admit_resp(ROOM, "fan", ticket), 409, "session-ended")
    rejoin = await api.join_resp(ROOM, "fan")  # the same place, never a new one
    again = await ok(rejoin, 200)
    assert again["created"] is False
    assert claims_of(again["ticket"])["tid"] == claims_of(ticket)["tid"]
    assert await active(api) == 0

    replay = await ok(await revoke(client, tokens, {"token": token, "reason": "misbehaved"}))
    assert (replay["freed"], replay["already"], replay["revoked_at"]) == (False, True, revoked_at)
    by_account = await ok(await revoke(client, tokens, {"account": "fan", "reason": "finished"}))
    assert (by_account["already"], by_account["revoked_at"]) == (True, revoked_at)
    if SERVE == "inprocess":
        counted = metric_value(await api.metrics(), REVOCATIONS, room=ROOM, reason="misbehaved")
        assert counted - metric_value(before, REVOCATIONS, room=ROOM, reason="misbehaved") == 1


def _epoch(rfc3339: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


async def test_revoking_an_account_closes_the_draws_gate_and_an_expired_token_still_names_it(
    client: Client, tokens: Tokens, api: Api, settings: Settings
) -> None:
    admin = bearer(tokens.admin("draws:write"))
    resp = await client.put(f"/v1/admin/draws/{DRAW}", json=draw_spec(), headers=admin)
    assert resp.status == 201, await resp.text()
    await link(client, api, draw=DRAW)
    url = f"/v1/draws/{DRAW}/entries"
    fan, _ = await admitted(api, "fan")
    late, _ = await admitted(api, "late-fan")
    assert await active(api) == 2

    body = await ok(await revoke(client, tokens, {"account": "fan", "reason": "finished"}))
    assert (body["freed"], body["already"]) == (True, False)
    assert await active(api) == 1

    async def gone() -> dict[str, Any] | None:
        headers = {**bearer(tokens.account("fan")), ADMISSION_HEADER: fan["token"]}
        resp = await client.post(url, json=CONSENT, headers=headers)
        return await resp.json() if resp.status == 403 else None

    closed = await refused_within_ticks(gone, "the draw's gate refusing the revoked session")
    assert closed["type"] == TYPE_BASE + "admission-required"
    assert closed["context"]["reason"] == "ended"

    # The site may revoke late: the session's token expired, still this room's, still named.
    keyring = await asyncio.to_thread(Keyring, settings.rooms.signing_key_dir)
    now = int(time.time())
    expired = keyring.sign(
        {**claims_of(late["token"]), "iat": now - 600, "nbf": now - 600, "exp": now - 1}
    )
    body = await ok(await revoke(client, tokens, {"token": expired, "reason": "finished"}))
    assert (body["freed"], body["already"]) == (True, False)
    assert await active(api) == 0


async def test_an_account_without_a_session_is_not_found_and_nothing_changes(
    client: Client, tokens: Tokens, store: Store, api: Api
) -> None:
    await api.create(ROOM, paused=True)  # nobody is called: a ticket, no session
    await api.join(ROOM, "waiting-fan")
    chain = await store.client.xlen(audit_chain(f"room:{ROOM}"))
    for account in ("nobody", "waiting-fan"):
        resp = await revoke(client, tokens, {"account": account, "reason": "finished"})
        await problem(resp, 404, "not-found")
    resp = await revoke(client, tokens, {"account": "fan", "reason": "finished"}, room="no-room")
    await problem(resp, 404, "not-found")
    assert await store.client.xlen(audit_chain(f"room:{ROOM}")) == chain  # no record
    assert (await api.stats(ROOM))["waiting"] == 1


async def test_only_the_revoke_scope_revokes_and_it_grants_nothing_else(
    client: Client, tokens: Tokens, api: Api
) -> None:
    await api.create(ROOM)
    await admitted(api, "fan")
    body = {"account": "fan", "reason": "finished"}
    resp = await client.post(URL, json=body)
    await problem(resp, 401, "unauthorized")
    for scopes in (("rooms:write",), ("rooms:read", "rooms:write")):
        resp = await client.post(URL, json=body, headers=bearer(tokens.admin(*scopes)))
        await problem(resp, 403, "forbidden")
    resp = await client.post(URL, json=body, headers=bearer(tokens.account("fan")))
    await problem(resp, 401, "unauthorized")  # an account's bearer is no admin's
    assert await active(api) == 1  # nothing changed
    for method, path, payload in (
        ("PATCH", f"/v1/admin/rooms/{ROOM}", {"rate_per_s": 1}),
        ("GET", f"/v1/admin/rooms/{ROOM}", None),
        ("POST", f"/v1/admin/rooms/{ROOM}/pause", None),
    ):
        resp = await client.request(method, path, json=payload, headers=site(tokens))
        await problem(resp, 403, "forbidden")
    await ok(await client.post(URL, json=body, headers=site(tokens)))
    assert await active(api) == 0


async def test_a_site_credential_for_one_room_revokes_there_only(
    client: Client, tokens: Tokens, api: Api
) -> None:
    await api.create(ROOM)
    await api.create(OTHER)
    await admitted(api, "fan")
    await admitted(api, "fan", OTHER)
    body = {"account": "fan", "reason": "finished"}
    theirs = bearer(tokens.admin(f"rooms:revoke:{OTHER}"))
    resp = await client.post(URL, json=body, headers=theirs)
    await problem(resp, 403, "forbidden")  # another room's site
    assert await active(api) == 1
    ours = bearer(tokens.admin(f"rooms:revoke:{ROOM}"))
    assert (await ok(await client.post(URL, json=body, headers=ours)))["freed"] is True
    assert await active(api) == 0
    other = f"/v1/rooms/{OTHER}/revoke"
    assert (await ok(await client.post(other, json=body, headers=theirs)))["freed"] is True
    # The all-rooms scope is no failed check of the one-room scope (alerts count those).
    before = await (await client.get("/metrics")).text()
    await ok(await client.post(URL, json=body, headers=site(tokens)))  # a replay: already
    after = await (await client.get("/metrics")).text()
    name, why = "guichet_auth_failures_total", "insufficient_scope"
    assert metric_value(after, name, reason=why) == metric_value(before, name, reason=why)


async def test_forged_and_other_rooms_tokens_are_refused_and_change_nothing(
    client: Client, tokens: Tokens, api: Api, tmp_path: Path
) -> None:
    await api.create(ROOM)
    await api.create(OTHER)  # the same audience: only the `room` claim differs
    await api.create("elsewhere", audience="elsewhere.example")
    mine, _ = await admitted(api, "fan")
    there, _ = await admitted(api, "fan", OTHER)
    afar, _ = await admitted(api, "fan", "elsewhere")
    for token in (there["token"], afar["token"]):
        resp = await revoke(client, tokens, {"token": token, "reason": "misbehaved"})
        await problem(resp, 403, "forbidden")
    stranger = await asyncio.to_thread(Keyring, tmp_path / "stranger-keys")
    for token in (
        flip_last_char(mine["token"]),  # the signature no longer verifies
        stranger.sign(claims_of(mine["token"])),  # an unknown key
        "not.a.jwt",
    ):
        resp = await revoke(client, tokens, {"token": token, "reason": "misbehaved"})
        body = await problem(resp, 422, "validation")
        assert [e["field"] for e in body["errors"]] == ["token"], body
    assert await active(api) == 1
    assert (await api.stats(OTHER))["active"] == 1
    resp = await api.heartbeat_resp(ROOM, mine["token"])
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "finished"}, "token"),  # neither token nor account
        ({"token": "a.b.c", "account": "fan", "reason": "finished"}, "token"),  # both
        ({"account": "fan"}, "reason"),
        ({"account": "fan", "reason": "bored"}, "reason"),
        ({"account": "", "reason": "finished"}, "account"),
        ({"account": "x" * 129, "reason": "finished"}, "account"),
        ({"account": "a\nb", "reason": "finished"}, "account"),
        ({"token": "no dots", "reason": "finished"}, "token"),
        ({"token": "a.b.c" + "x" * 2048, "reason": "finished"}, "token"),
        ({"account": "fan", "reason": "finished", "why": "x"}, "why"),
        ({"account": 7, "reason": "finished"}, "account"),
        ([], "(body)"),
    ],
)
async def test_a_bad_body_is_422_naming_the_field(
    client: Client, tokens: Tokens, api: Api, body: Any, field: str
) -> None:
    await api.create(ROOM)
    await admitted(api, "fan")
    answer = await problem(await revoke(client, tokens, body), 422, "validation")
    assert [e["field"] for e in answer["errors"]] == [field], answer
    assert await active(api) == 1


async def test_fifty_concurrent_revocations_free_fifty_slots_with_fifty_records(
    client: Client, tokens: Tokens, store: Store, api: Api
) -> None:
    await api.create(ROOM)
    accounts = [f"fan-{i}" for i in range(50)]
    admissions = await asyncio.gather(*(admitted(api, a) for a in accounts))
    assert await active(api) == 50
    records = await store.client.xlen(audit_chain(f"room:{ROOM}"))
    answers = await asyncio.gather(*(
        revoke(client, tokens, {"token": a["token"], "reason": "finished"} if i % 2 else
               {"account": accounts[i], "reason": "misbehaved"})
        for i, (a, _) in enumerate(admissions)
    ))  # fmt: skip
    bodies = [await ok(resp) for resp in answers]
    assert [(b["freed"], b["already"]) for b in bodies] == [(True, False)] * 50
    assert await active(api) == 0
    assert await store.client.xlen(audit_chain(f"room:{ROOM}")) == records + 50
    # The same fifty again, at once: all already revoked, nothing more written.
    answers = await asyncio.gather(*(
        revoke(client, tokens, {"account": a, "reason": "finished"}) for a in accounts
    ))  # fmt: skip
    assert [(await ok(r))["already"] for r in answers] == [True] * 50
    assert await store.client.xlen(audit_chain(f"room:{ROOM}")) == records + 50


async def test_any_body_gets_an_answer_never_a_5xx(
    client: Client, tokens: Tokens, api: Api
) -> None:
    await api.create(ROOM)
    await admitted(api, "fan")
    loop = asyncio.get_running_loop()
    headers = {**site(tokens), "Content-Type": "application/json"}

    async def ask(raw: bytes) -> tuple[int, str]:
        async with client.post(URL, data=raw, headers=headers) as resp:
            await resp.read()
            return resp.status, resp.content_type

    values = (
        st.none()
        | st.text(max_size=40)
        | st.integers()
        | st.sampled_from(["fan", "finished", "misbehaved", "a.b.c", "nobody"])
    )
    bodies = st.dictionaries(
        st.sampled_from(["token", "account", "reason", "x"]), values, max_size=4
    ).map(lambda d: json.dumps(d).encode()) | st.binary(max_size=60)

    @hyp_settings(max_examples=150, deadline=None)
    @given(bodies)
    def probe(raw: bytes) -> None:
        status, content_type = asyncio.run_coroutine_threadsafe(ask(raw), loop).result(30)
        assert status < 500, (raw, status)
        if status >= 400:
            assert content_type == "application/problem+json", (raw, status)

    await asyncio.to_thread(probe)


async def test_the_cli_revokes_by_account_or_token_value(
    client: Client,
    tokens: Tokens,
    api: Api,
    settings: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await api.create(ROOM)
    await admitted(api, "fan")
    other, _ = await admitted(api, "other-fan")
    config = str(await asyncio.to_thread(write_config, tmp_path, settings))
    base = ("--config", config, "room", "revoke", ROOM, "--url", str(client.make_url("/")))
    code, out, err = await run_cli(capsys, *base, "--account", "fan", "--reason", "finished")
    assert code == 0, err
    assert json.loads(out)["freed"] is True
    code, out, err = await run_cli(
        capsys, *base, "--token-value", other["token"], "--reason", "misbehaved"
    )
    assert code == 0, err
    assert await active(api) == 0
    code, _, err = await run_cli(capsys, *base, "--account", "nobody", "--reason", "finished")
    assert code == 1
    assert "not-found" in err
