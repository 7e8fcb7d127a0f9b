"""The room admin API's refusals of bad bodies, bad windows, bad room ids and unknown rooms:
RFC 9457 problems naming the field, and nothing changed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from guichet.config import Settings
from tests.conftest import Tokens
from tests.e2e.room_helpers import ROOM, TICKET, Api, Json, iso, ok, problem, spec

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
async def test_a_patch_that_changes_nothing_is_refused_naming_the_body(
    api: Api, body: Json
) -> None:
    # every field of RoomPatch is optional and null means "leave it": a body that sets none is
    # a validation problem on the whole body (patch_room refuses it before any Redis call)
    await api.create(rate_per_s=77)
    before = await api.stats()
    resp = await api.client.patch(f"/v1/admin/rooms/{ROOM}", json=body, headers=api.admin)
    refused = await problem(resp, 422, "validation")
    assert [e["field"] for e in refused["errors"]] == ["(body)"], refused
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
