"""The OpenAPI document of the room API."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

from tests.conftest import Client
from tests.e2e.room_helpers import ok

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
    event = ref("/v1/rooms/{room}/events", "get", "200", "text/event-stream")  # each event
    assert event["required"] == ["data"]


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


async def test_openapi_declares_every_header_the_api_reads(client: Client) -> None:
    doc = await ok(await client.get("/openapi.json"))

    def headers(method: str, path: str) -> set[str]:
        params = doc["paths"][path][method].get("parameters", [])
        return {p["name"] for p in params if p["in"] == "header"}

    for method, path in (("get", "status"), ("get", "events"), ("post", "admit"),
                         ("post", "leave")):  # fmt: skip
        assert "X-Queue-Ticket" in headers(method, f"/v1/rooms/{{room}}/{path}"), path
    assert "X-Queue-Seen" in headers("get", "/v1/rooms/{room}/status")
    assert "Last-Event-ID" in headers("get", "/v1/rooms/{room}/events")
    assert {"Idempotency-Key", "X-Admission-Token"} <= headers("post", "/v1/sales/{sale}/holds")
    assert "X-Admission-Token" in headers("post", "/v1/draws/{draw}/entries")
    # what the server enforces, the schema says: consent must be true
    entry = doc["components"]["schemas"]["EntryRequest"]["properties"]
    assert entry["accept_rules"]["const"] is True
    assert entry["accept_data_processing"]["const"] is True
