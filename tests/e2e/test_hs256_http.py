"""An HS256 account token (a secret shared with the front-end) joins a room when
``security.account_hs256_secret`` is set, and is a 401 counted ``bad_algorithm`` when not."""

from __future__ import annotations

from pathlib import Path

import pytest

from guichet import auth
from guichet.config import Settings
from tests.conftest import Backend, Client, Tokens, make_settings, metric_value, metrics_when
from tests.e2e.room_helpers import ROOM, Api, bearer, ok, problem

SECRET = "a front-end's shared secret, 32+ bytes long"


@pytest.fixture(params=["configured", "not configured"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, backend: Backend) -> Settings:
    security: dict[str, object] = (
        {"account_hs256_secret": SECRET} if request.param == "configured" else {}
    )
    return make_settings(tmp_path, backend.redis_section, security=security)


async def test_an_hs256_account_token_joins_only_when_configured(
    client: Client, tokens: Tokens, settings: Settings
) -> None:
    api = Api(client, tokens)
    await api.create()
    sec = settings.security
    token = auth.mint_hs256(SECRET.encode(), issuer=sec.issuer, audience=sec.audience,
                            subject="acc-hs", ttl_s=600)  # fmt: skip
    failures = "guichet_auth_failures_total"
    before = metric_value(await api.metrics(), failures, reason="bad_algorithm")
    resp = await client.post(f"/v1/rooms/{ROOM}/join", headers=bearer(token))
    if sec.account_hs256_secret is not None:
        joined = await ok(resp, resp.status)
        assert resp.status in (200, 201)
        assert joined["ticket"]
        return
    await problem(resp, 401, "unauthorized")
    # the same token again: refused again (a refusal is never cached), and counted
    resp = await client.post(f"/v1/rooms/{ROOM}/join", headers=bearer(token))
    await problem(resp, 401, "unauthorized")
    await metrics_when(
        client, lambda t: metric_value(t, failures, reason="bad_algorithm") == before + 2
    )
