"""The app over a real loopback socket: problem+json, request ids, auth, metrics, OpenAPI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from guichet import openapi, webio, wire
from guichet.app import SCRIPTS, create_app
from guichet.config import Settings
from guichet.embedded import EmbeddedValkey
from guichet.errors import PROBLEM_CONTENT_TYPE
from tests.conftest import Client, Tokens, make_settings, metric_value, metrics_when


async def problem(resp: aiohttp.ClientResponse, status: int) -> dict[str, object]:
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM_CONTENT_TYPE
    body: dict[str, object] = await resp.json(content_type=None)
    assert body["status"] == status
    assert str(body["type"]).startswith("https://guichet.dev/problems/")
    assert body["title"]
    assert body["detail"]
    return body


async def test_healthz_and_readyz(client: Client) -> None:
    assert (await (await client.get("/healthz")).json())["status"] == "ok"
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 200, body
    assert body["scripts"] == sorted({s.name for s in SCRIPTS})


async def test_404_and_405_are_problems(client: Client) -> None:
    body = await problem(await client.get("/no/such/thing"), 404)
    assert body["instance"] == "/no/such/thing"
    resp = await client.delete("/healthz")
    body = await problem(resp, 405)
    assert "GET" in resp.headers["Allow"]


async def test_request_id_echoed_or_generated(client: Client) -> None:
    resp = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert resp.headers["X-Request-Id"] == "abc-123"
    ids = set()
    for _ in range(5):
        resp = await client.get("/healthz", headers={"X-Request-Id": "é" * 3})
        ids.add(resp.headers["X-Request-Id"])
    assert len(ids) == 5  # the unusable one is replaced by fresh, unique ids
    assert all(i.isascii() for i in ids)
    resp = await client.get("/missing")
    assert resp.headers["X-Request-Id"]


async def test_me_requires_valid_token(client: Client, tokens: Tokens) -> None:
    resp = await client.get("/v1/me")
    await problem(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    await problem(await client.get("/v1/me", headers={"Authorization": "Bearer nope"}), 401)
    await problem(
        await client.get(
            "/v1/me", headers={"Authorization": f"Bearer {tokens.account(ttl_s=-100)}"}
        ),
        401,
    )
    await problem(
        await client.get("/v1/me", headers={"Authorization": f"Bearer {tokens.admin('ops:read')}"}),
        401,
    )
    resp = await client.get(
        "/v1/me", headers={"Authorization": f"Bearer {tokens.account('acc-ü')}"}
    )
    assert resp.status == 200
    assert (await resp.json())["account"] == "acc-ü"


async def test_admin_scope_is_enforced(client: Client, tokens: Tokens) -> None:
    await problem(
        await client.get(
            "/v1/admin/status", headers={"Authorization": f"Bearer {tokens.account()}"}
        ),
        401,
    )
    resp = await client.get(
        "/v1/admin/status", headers={"Authorization": f"Bearer {tokens.admin('room:write')}"}
    )
    body = await problem(resp, 403)
    assert "ops:read" in str(body["detail"])
    resp = await client.get(
        "/v1/admin/status", headers={"Authorization": f"Bearer {tokens.admin('ops:read')}"}
    )
    assert resp.status == 200
    assert (await resp.json())["scopes"] == ["ops:read"]


async def test_refusals_are_counted_by_reason(client: Client, tokens: Tokens) -> None:
    before = await (await client.get("/metrics")).text()
    await client.get("/v1/me", headers={"Authorization": f"Bearer {tokens.account(ttl_s=-100)}"})
    text = await (await client.get("/metrics")).text()
    name = "guichet_auth_failures_total"
    assert (
        metric_value(text, name, reason="expired") - metric_value(before, name, reason="expired")
        == 1
    )


class Echo(wire.Base):
    name: str
    count: int


class Echoed(wire.Reply):
    name: str
    count: int


@openapi.endpoint("test echo", request=Echo, response=Echoed)
async def echo(request: web.Request) -> web.Response:
    body = await webio.read_json(request, Echo)
    return webio.respond(Echoed(name=body.name, count=body.count))


@openapi.endpoint("test crash")
async def boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret internal detail")


@pytest.fixture
async def echo_client(app: web.Application) -> AsyncIterator[Client]:
    app.router.add_post("/echo", echo)
    app.router.add_get("/boom", boom)
    server = TestServer(app, host="127.0.0.1")
    async with TestClient(server) as c:
        yield c


async def test_body_validation_problems(echo_client: Client) -> None:
    c = echo_client
    ok = await c.post("/echo", json={"name": "ñ", "count": 2})
    assert await ok.json() == {"name": "ñ", "count": 2}
    body = await problem(await c.post("/echo", json={"name": "x", "count": "2"}), 422)
    assert body["errors"] == [{"field": "count", "detail": "Expected int, got str"}]
    body = await problem(await c.post("/echo", json={"name": "x", "count": 1, "admin": True}), 422)
    assert body["errors"] == [{"field": "admin", "detail": "unknown field"}]
    await problem(
        await c.post("/echo", data=b"{not json", headers={"Content-Type": "application/json"}), 400
    )
    await problem(
        await c.post(
            "/echo", data=b"name=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
        ),
        415,
    )


async def test_huge_body_is_413(echo_client: Client, settings: Settings) -> None:
    big = b'{"name": "' + b"x" * (settings.server.max_body_bytes + 10) + b'", "count": 1}'
    await problem(
        await echo_client.post("/echo", data=big, headers={"Content-Type": "application/json"}), 413
    )

    async def chunks() -> AsyncIterator[bytes]:
        yield big  # no Content-Length: the limit applies while reading

    await problem(
        await echo_client.post(
            "/echo", data=chunks(), headers={"Content-Type": "application/json"}
        ),
        413,
    )


async def test_500_hides_internals(echo_client: Client, caplog: pytest.LogCaptureFixture) -> None:
    resp = await echo_client.get("/boom")
    body = await problem(resp, 500)
    assert "secret" not in await resp.text()
    assert resp.headers["X-Request-Id"] in str(body["detail"])
    assert any("secret internal detail" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_metrics_count_requests_by_route_template(client: Client) -> None:
    name = "guichet_http_requests_total"
    labels = {"method": "GET", "route": "/healthz", "status": "2xx"}
    before = await (await client.get("/metrics")).text()
    await asyncio.gather(*(client.get("/healthz") for _ in range(7)))
    await client.get("/nope/1")
    unmatched = {"route": "unmatched", "status": "4xx"}

    def counted(text: str, **labels: str) -> float:
        return metric_value(text, name, **labels) - metric_value(before, name, **labels)

    text = await metrics_when(
        client, lambda t: counted(t, **labels) >= 7 and counted(t, **unmatched) >= 1
    )
    assert counted(text, **labels) == 7
    assert counted(text, **unmatched) == 1
    for name in (
        "guichet_http_request_duration_seconds_bucket",
        "guichet_http_requests_in_flight",
        "guichet_event_loop_lag_seconds",
        "guichet_redis_call_duration_seconds_bucket",
        "guichet_build_info",
    ):
        assert name in text, name


async def test_openapi_covers_every_route_and_is_valid(echo_client: Client) -> None:
    doc = await (await echo_client.get("/openapi.json")).json()
    validate(doc)
    app = echo_client.app
    assert app is not None
    for method, path, _ in openapi.api_routes(app):
        assert method in doc["paths"][path], (method, path)
    post = doc["paths"]["/echo"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Echo"
    }
    assert {"400", "413", "415", "422"} <= set(post["responses"])
    assert doc["components"]["schemas"]["Echo"]["additionalProperties"] is False
    assert doc["paths"]["/v1/admin/status"]["get"]["security"] == [{"adminBearer": []}]


def test_undeclared_route_fails_the_document(settings: Settings) -> None:
    app = create_app(settings)

    async def bare(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/bare", bare)
    with pytest.raises(ValueError, match="no @endpoint"):
        openapi.build_document(app)


@pytest.fixture
def private_app(tmp_path: Path, private_valkey: EmbeddedValkey) -> web.Application:
    settings = make_settings(tmp_path, {"url": private_valkey.url, "connect_timeout_s": 0.5})
    return create_app(settings)


async def test_readyz_503_while_redis_is_down_then_200(
    private_app: web.Application, private_valkey: EmbeddedValkey
) -> None:
    async with TestClient(TestServer(private_app, host="127.0.0.1")) as c:
        assert (await c.get("/readyz")).status == 200
        await asyncio.to_thread(private_valkey.stop)
        resp = await c.get("/readyz")
        assert resp.status == 503
        body = await resp.json()
        assert body["status"] == "not_ready"
        assert body["reason"].startswith("redis unreachable")
        assert resp.headers["Retry-After"] == "1"
        assert (await c.get("/healthz")).status == 200  # alive, just not ready
        await asyncio.to_thread(private_valkey.start)  # restarted: empty script cache
        resp = await c.get("/readyz")
        assert resp.status == 200, await resp.text()


async def test_the_ready_gauge_follows_redis_without_anyone_asking_readyz(
    private_app: web.Application, private_valkey: EmbeddedValkey
) -> None:
    def ready(want: float) -> Callable[[str], bool]:
        return lambda text: "guichet_ready " in text and metric_value(text, "guichet_ready") == want

    async with TestClient(TestServer(private_app, host="127.0.0.1")) as c:
        await metrics_when(c, ready(1))
        await asyncio.to_thread(private_valkey.stop)
        await metrics_when(c, ready(0), within_s=30)  # the background probe noticed
        await asyncio.to_thread(private_valkey.start)
        await metrics_when(c, ready(1), within_s=30)
