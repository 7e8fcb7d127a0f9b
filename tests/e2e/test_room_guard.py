"""The room guards what it meters (issue 13, item 1): a sale or draw linked to a waiting room
takes holds and entries only with that room's admission token, for the bearer's account, not
expired, of a session still going. Real Valkey, real HTTP socket."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from guichet.config import Settings
from guichet.errors import TYPE_BASE
from guichet.room.guard import ADMISSION_COOKIE_PREFIX, ADMISSION_HEADER
from guichet.signing import Keyring
from guichet.store.client import Store
from guichet.store.keys import RoomKeys
from tests.conftest import Backend, Client, Tokens, make_settings, metric_value
from tests.e2e.room_helpers import Api, bearer, claims_of, eventually
from tests.e2e.test_draw_http import CONSENT
from tests.e2e.test_draw_http import spec as draw_spec
from tests.e2e.test_shop_http import SALE, give_window, pack, setup_sale
from tests.served import SERVE

ROOM = "sale-room"
OTHER = "other-room"
DRAW = "d1"
#: The pacer's index refresh: a room made on one worker is known to the others within it.
LINK_DELAY_S = 2.5


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(tmp_path, backend.redis_section, shop={"refresh_interval_s": 0.05})


@pytest.fixture
def api(client: Client, tokens: Tokens) -> Api:
    return Api(client, tokens)


async def link(client: Client, api: Api, room: str = ROOM, **links: Any) -> None:
    """Make ``room`` (open, admitting at once) linked to ``links`` (sale=…, draw=…)."""
    await api.create(room, **links)
    if SERVE == "workers2":  # worker processes: each learns the room at its index refresh
        await asyncio.sleep(LINK_DELAY_S)


async def admitted(api: Api, account: str, room: str = ROOM) -> tuple[dict[str, Any], str]:
    """(the admit answer, the queue ticket) of ``account``, through the room."""
    ticket = await api.ready_ticket(room, account)
    resp = await api.admit_resp(room, account, ticket)
    assert resp.status == 200, await resp.text()
    assert resp.cookies[ADMISSION_COOKIE_PREFIX + room].value  # the page's cookie
    body: dict[str, Any] = await resp.json()
    return body, ticket


async def hold(
    client: Client,
    tokens: Tokens,
    account: str,
    admission: str | None = None,
    *,
    cookie: str | None = None,
    key: str | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {**bearer(tokens.account(account)), "Idempotency-Key": key or secrets.token_hex(8)}
    if admission is not None:
        headers[ADMISSION_HEADER] = admission
    if cookie is not None:
        headers["Cookie"] = f"{ADMISSION_COOKIE_PREFIX}{ROOM}={cookie}"
    body = {"packs": [pack(1, 2, 3)]}
    resp = await client.post(f"/v1/sales/{SALE}/holds", json=body, headers=headers)
    return resp.status, await resp.json()


def refused(status: int, body: dict[str, Any], reason: str, room: str = ROOM) -> None:
    """A 403 ``admission-required`` naming the room and its page, for ``reason``."""
    assert status == 403, body
    assert body["type"] == TYPE_BASE + "admission-required", body
    assert body["context"] == {"room": room, "page": f"/rooms/{room}", "reason": reason}
    assert f"/rooms/{room}" in body["detail"]


async def linked_sale(client: Client, tokens: Tokens, store: Store, api: Api) -> None:
    await setup_sale(client, tokens)
    await link(client, api, sale=SALE)
    for account in ("fan", "other-fan"):
        await give_window(store, account)


async def test_a_bearer_alone_is_refused_and_the_linked_flow_holds(
    client: Client, tokens: Tokens, store: Store, api: Api
) -> None:
    await linked_sale(client, tokens, store, api)
    before = await api.metrics()
    refused(*await hold(client, tokens, "fan"), "missing")
    if SERVE == "inprocess":  # worker processes: /metrics is one worker's
        name, after = "guichet_room_guard_refusals_total", await api.metrics()
        counted = metric_value(after, name, reason="missing")
        assert counted - metric_value(before, name, reason="missing") == 1
    admission, _ = await admitted(api, "fan")
    assert claims_of(admission["token"])["sub"] == "fan"
    status, held = await hold(client, tokens, "fan", admission["token"], key="k1")
    assert status == 201, held
    assert held["tickets"] == 3
    again, replay = await hold(client, tokens, "fan", admission["token"], key="k1")
    assert (again, replay["id"]) == (201, held["id"])  # the cached token, the same hold
    status, by_cookie = await hold(client, tokens, "fan", cookie=admission["token"])
    assert status == 201, by_cookie  # the cookie the room page sets does as well


async def test_another_rooms_another_accounts_and_an_expired_token_are_refused(
    client: Client, tokens: Tokens, store: Store, api: Api, settings: Settings
) -> None:
    await linked_sale(client, tokens, store, api)
    # Same audience (AUDIENCE), same keyring, not linked: only the `room` claim differs.
    await api.create(OTHER)
    elsewhere, _ = await admitted(api, "fan", OTHER)
    refused(*await hold(client, tokens, "fan", elsewhere["token"]), "other_room")

    theirs, _ = await admitted(api, "other-fan")
    refused(*await hold(client, tokens, "fan", theirs["token"]), "wrong_account")
    refused(*await hold(client, tokens, "fan", cookie=theirs["token"]), "wrong_account")

    mine, _ = await admitted(api, "fan")
    keyring = await asyncio.to_thread(Keyring, settings.rooms.signing_key_dir)
    now = int(time.time())
    expired = keyring.sign({
        **claims_of(mine["token"]), "iat": now - 600, "nbf": now - 600, "exp": now - 1,
    })  # fmt: skip
    refused(*await hold(client, tokens, "fan", expired), "expired")
    forged = keyring.sign({**claims_of(mine["token"]), "aud": "elsewhere.example"})
    refused(*await hold(client, tokens, "fan", forged), "forged")
    refused(*await hold(client, tokens, "fan", "not-a-jwt"), "malformed")
    status, _ = await hold(client, tokens, "fan", mine["token"])
    assert status == 201  # and the right one still holds


async def test_a_left_session_is_refused_within_the_tokens_lifetime(
    client: Client, tokens: Tokens, store: Store, api: Api
) -> None:
    await linked_sale(client, tokens, store, api)
    admission, ticket = await admitted(api, "fan")
    assert (await hold(client, tokens, "fan", admission["token"], key="k"))[0] == 201
    resp = await api.leave_resp(ROOM, "fan", ticket)
    assert resp.status == 200, await resp.text()
    assert claims_of(admission["token"])["exp"] > time.time()  # the token itself still lives

    async def gone() -> dict[str, Any] | None:
        status, body = await hold(client, tokens, "fan", admission["token"], key="k2")
        return body if status == 403 else None

    refused(403, await eventually(gone, "the ended session refused", within_s=5), "ended")


async def test_an_idle_expired_session_is_refused_and_a_heartbeat_extends(
    client: Client, tokens: Tokens, store: Store, api: Api
) -> None:
    await linked_sale(client, tokens, store, api)
    admission, _ = await admitted(api, "fan")
    resp = await api.heartbeat_resp(ROOM, admission["token"])
    assert resp.status == 200, await resp.text()
    assert resp.cookies[ADMISSION_COOKIE_PREFIX + ROOM].value
    fresh = (await resp.json())["token"]
    assert (await hold(client, tokens, "fan", fresh, key="k"))[0] == 201
    # Idle past its expiry (as if no heartbeat came): the next tick reaps the session.
    await store.client.zadd(RoomKeys(ROOM).active, {"fan": 1})

    async def gone() -> dict[str, Any] | None:
        status, body = await hold(client, tokens, "fan", fresh, key="k2")
        return body if status == 403 else None

    refused(403, await eventually(gone, "the reaped session refused", within_s=5), "ended")


async def test_an_unlinked_sale_needs_no_admission(
    client: Client, tokens: Tokens, store: Store, api: Api
) -> None:
    await setup_sale(client, tokens)
    await link(client, api, sale="another-sale")
    await give_window(store, "fan")
    status, held = await hold(client, tokens, "fan")
    assert status == 201, held


async def test_a_linked_draw_takes_entries_only_through_the_room(
    client: Client, tokens: Tokens, api: Api
) -> None:
    admin = bearer(tokens.admin("draws:write"))
    resp = await client.put(f"/v1/admin/draws/{DRAW}", json=draw_spec(), headers=admin)
    assert resp.status == 201, await resp.text()
    await link(client, api, draw=DRAW)
    url = f"/v1/draws/{DRAW}/entries"
    resp = await client.post(url, json=CONSENT, headers=bearer(tokens.account("fan")))
    refused(resp.status, await resp.json(), "missing")
    admission, _ = await admitted(api, "fan")
    headers = {**bearer(tokens.account("fan")), ADMISSION_HEADER: admission["token"]}
    resp = await client.post(url, json=CONSENT, headers=headers)
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["stratum"] == "general"


async def test_the_openapi_declares_the_admission_header(client: Client) -> None:
    doc = await (await client.get("/openapi.json")).json()
    for path in ("/v1/sales/{sale}/holds", "/v1/draws/{draw}/entries"):
        op = doc["paths"][path]["post"]
        headers = {p["name"]: p for p in op["parameters"] if p["in"] == "header"}
        assert headers[ADMISSION_HEADER]["required"] is False
        assert "403" in op["responses"]
    hold_headers = doc["paths"]["/v1/sales/{sale}/holds"]["post"]["parameters"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in hold_headers)
