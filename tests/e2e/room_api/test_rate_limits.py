"""The join rate limits through the real app: per account and per client address (behind a
proxy, the last X-Forwarded-For entry counts)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from guichet.config import Settings
from tests.conftest import Tokens
from tests.e2e.room_helpers import ROOM, Api, bearer, problem, rejected, served


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
