"""E-tickets over HTTP on a real Valkey: a purchase makes one signed ticket per seat, the
buyer fetches them (JSON, SVG, PNG), a gate scans each exactly once, forged payloads fail."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import hypothesis
import jwt
import pytest
from hypothesis import strategies as st
from openapi_spec_validator import validate

from guichet import cli
from guichet.config import Settings
from guichet.signing import Keyring
from guichet.store.client import Store
from tests.conftest import Backend, Client, Tokens, make_settings, metric_value, settings_file
from tests.e2e.test_shop_http import SALE, give_window, pack, post_hold, setup_sale

SCAN = "/v1/admin/gates/scan"


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(tmp_path, backend.redis_section, shop={"refresh_interval_s": 0.05})


@pytest.fixture
def ticket_keys(settings: Settings) -> Keyring:
    """The server's ticket keyring, read from its directory (outside the event loop)."""
    return Keyring(settings.etickets.signing_key_dir)


@pytest.fixture
def other_keys(tmp_path: Path) -> Keyring:
    return Keyring(tmp_path / "someone-elses-keys")


def bearer(tokens: Tokens, account: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.account(account)}"}


async def buy(client: Client, tokens: Tokens, store: Store, account: str,
              body: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Hold and confirm: the confirmed hold."""
    await give_window(store, account)
    status, held = await post_hold(client, tokens, account, body)
    assert status == 201, held
    url = f"/v1/sales/{SALE}/holds/{held['id']}/confirm"
    payment = {"payment_reference": "PAY-1"}
    resp = await client.post(url, json=payment, headers=bearer(tokens, account))
    assert resp.status == 200, await resp.text()
    confirmed: dict[str, Any] = await resp.json()
    return confirmed


async def my_tickets(client: Client, tokens: Tokens, account: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/v1/sales/{SALE}/tickets", headers=bearer(tokens, account))
    assert resp.status == 200, await resp.text()
    tickets: list[dict[str, Any]] = (await resp.json())["tickets"]
    return tickets


async def counts(client: Client) -> dict[tuple[str, str], float]:
    """The e-ticket counters now (the registry outlives a test: compare differences)."""
    text = await (await client.get("/metrics")).text()
    return {(name, value): metric_value(text, name, **{label: value}) for name, label, value in (
        ("guichet_etickets_issued_total", "sale", SALE),
        ("guichet_eticket_scans_total", "outcome", "accepted"),
        ("guichet_eticket_scans_total", "outcome", "refused"),
        *(("guichet_eticket_scan_refusals_total", "reason", r)
          for r in ("malformed", "forged", "expired", "unknown", "already_used")),
    )}  # fmt: skip


async def counted(client: Client, before: dict[tuple[str, str], float],
                  **expected: float) -> None:  # fmt: skip
    """Wait until the counters moved by ``expected`` (by label value) since ``before``."""

    async def moved() -> dict[str, float]:
        now = await counts(client)
        return {v: now[(n, v)] - before[(n, v)] for n, v in now if v in expected}

    for _ in range(300):  # up to 15 s: worker processes flush every 250 ms
        got = await moved()
        if got == expected:
            return
        await asyncio.sleep(0.05)
    assert got == expected


async def scan(client: Client, tokens: Tokens, payload: str, gate: str = "SDF-N3") -> Any:
    headers = {"Authorization": f"Bearer {tokens.admin('gates:scan')}"}
    return await client.post(SCAN, json={"payload": payload, "gate": gate}, headers=headers)


async def test_a_purchase_issues_one_signed_ticket_per_seat_verifiable_offline(
    client: Client, tokens: Tokens, store: Store, settings: Settings
) -> None:
    await setup_sale(client, tokens)
    bought = await buy(client, tokens, store, "fan", {"packs": [pack(1, 2, 3, quantity=2)]})
    tickets = await my_tickets(client, tokens, "fan")
    assert [t["id"] for t in tickets] == [f"{bought['id']}.{n}" for n in range(1, 7)]
    assert [t["session"] for t in tickets] == ["ATH-01"] * 2 + ["ATH-02"] * 2 + ["ATH-03"] * 2
    assert {(t["sale"], t["category"], t["account"], t["state"]) for t in tickets} == {
        (SALE, "B", "fan", "valid")
    }
    assert len({t["payload"] for t in tickets}) == 6
    # Offline: the JWKS alone verifies a payload (a gate without the network does this).
    jwks = jwt.PyJWKSet.from_dict(await (await client.get("/.well-known/jwks.json")).json())
    payload = tickets[0]["payload"]
    key = next(k for k in jwks.keys if k.key_id == jwt.get_unverified_header(payload)["kid"])
    cfg = settings.etickets
    claims = jwt.decode(payload, key.key, algorithms=["EdDSA"], audience=cfg.audience,
                        issuer=cfg.issuer)  # fmt: skip
    assert (claims["tid"], claims["sub"], claims["sale"], claims["ses"], claims["cat"]) == (
        tickets[0]["id"], "fan", SALE, "ATH-01", "B")  # fmt: skip
    assert claims["exp"] - claims["iat"] == settings.etickets.valid_days * 24 * 3600
    assert await my_tickets(client, tokens, "fan") == tickets  # derived: the same every time
    assert await my_tickets(client, tokens, "someone-else") == []  # bound to the account


async def test_held_and_released_holds_issue_no_ticket(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await setup_sale(client, tokens)
    await give_window(store, "fan")
    status, held = await post_hold(client, tokens, "fan", {"packs": [pack(0, 1, 2)]})
    assert status == 201
    assert await my_tickets(client, tokens, "fan") == []
    resp = await client.delete(f"/v1/sales/{SALE}/holds/{held['id']}",
                               headers=bearer(tokens, "fan"))  # fmt: skip
    assert resp.status == 200
    assert await my_tickets(client, tokens, "fan") == []
    assert (await client.get(f"/v1/sales/{SALE}/tickets/{held['id']}.1",
                             headers=bearer(tokens, "fan"))).status == 404  # fmt: skip


async def test_one_ticket_as_json_svg_and_png(client: Client, tokens: Tokens, store: Store) -> None:
    await setup_sale(client, tokens)
    bought = await buy(client, tokens, store, "fan", {"packs": [pack(0, 1, 2)]})
    url = f"/v1/sales/{SALE}/tickets/{bought['id']}.2"
    fan = bearer(tokens, "fan")
    resp = await client.get(url, headers=fan)
    assert resp.status == 200
    assert (await resp.json())["session"] == "ATH-01"
    svg = await client.get(url + "?format=svg", headers=fan)
    assert (svg.status, svg.content_type) == (200, "image/svg+xml")
    assert (await svg.read()).lstrip().startswith(b"<?xml")
    png = await client.get(url, headers={**fan, "Accept": "image/png"})
    assert (png.status, png.content_type) == (200, "image/png")
    assert (await png.read()).startswith(b"\x89PNG\r\n\x1a\n")
    bad = await client.get(url + "?format=gif", headers=fan)
    assert bad.status == 422
    assert (await bad.json())["errors"][0]["field"] == "format"
    for missing in (f"{bought['id']}.4", f"{bought['id']}.0", "x", f"{bought['id']}"):
        resp = await client.get(f"/v1/sales/{SALE}/tickets/{missing}", headers=fan)
        assert resp.status == 404, missing
    other = await client.get(url, headers=bearer(tokens, "someone-else"))
    assert other.status == 404  # another account's ticket does not exist for you
    assert (await client.get(url)).status == 401


async def test_a_gate_scan_marks_the_ticket_used_once(
    client: Client, tokens: Tokens, store: Store
) -> None:
    before = await counts(client)
    await setup_sale(client, tokens)
    bought = await buy(client, tokens, store, "fan", {"packs": [pack(0, 1, 2)]})
    ticket = (await my_tickets(client, tokens, "fan"))[0]
    no_scope = {"Authorization": f"Bearer {tokens.admin('sales:write')}"}
    body = {"payload": ticket["payload"], "gate": "SDF-N3"}
    assert (await client.post(SCAN, json=body, headers=no_scope)).status == 403
    assert (await client.post(SCAN, json=body, headers=bearer(tokens, "fan"))).status == 401
    first = await scan(client, tokens, ticket["payload"])
    assert first.status == 200, await first.text()
    accepted = await first.json()
    assert (accepted["ticket"], accepted["gate"], accepted["account"]) == (
        f"{bought['id']}.1", "SDF-N3", "fan")  # fmt: skip
    again = await scan(client, tokens, ticket["payload"], gate="SDF-S1")
    assert again.status == 409
    problem = await again.json()
    assert problem["type"].endswith("/already-used")
    assert problem["context"] == {"ticket": accepted["ticket"], "used_at": accepted["used_at"],
                                  "gate": "SDF-N3"}  # fmt: skip  # when and where: the first
    shown = (await my_tickets(client, tokens, "fan"))[0]
    assert (shown["state"], shown["gate"], shown["used_at"]) == (
        "used", "SDF-N3", accepted["used_at"])  # fmt: skip
    second = await scan(client, tokens, (await my_tickets(client, tokens, "fan"))[1]["payload"])
    assert second.status == 200  # the next seat is its own ticket
    await counted(client, before, paris=3, accepted=2, refused=1, already_used=1)


async def test_200_concurrent_scans_of_one_ticket_accept_exactly_one(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await setup_sale(client, tokens)
    await buy(client, tokens, store, "fan", {"packs": [pack(0, 1, 2)]})
    payload = (await my_tickets(client, tokens, "fan"))[0]["payload"]
    answers = await asyncio.gather(*(scan(client, tokens, payload, gate=f"G{i}")
                                     for i in range(200)))  # fmt: skip
    statuses = sorted(a.status for a in answers)
    assert statuses == [200] + [409] * 199
    winner = next(a for a in answers if a.status == 200)
    gate = (await winner.json())["gate"]
    for a in answers:
        if a.status == 409:
            assert (await a.json())["context"]["gate"] == gate


async def test_forged_expired_and_unknown_payloads_are_refused(
    client: Client, tokens: Tokens, store: Store, settings: Settings,
    ticket_keys: Keyring, other_keys: Keyring,
) -> None:  # fmt: skip
    before = await counts(client)
    await setup_sale(client, tokens)
    bought = await buy(client, tokens, store, "fan", {"packs": [pack(0, 1, 2)]})
    real = (await my_tickets(client, tokens, "fan"))[0]["payload"]
    claims: dict[str, Any] = jwt.decode(real, options={"verify_signature": False})
    now = int(time.time())

    async def refused(payload: str, status: int, slug: str) -> None:
        resp = await scan(client, tokens, payload)
        assert resp.status == status, await resp.text()
        assert (await resp.json())["type"].endswith("/" + slug)

    await refused(other_keys.sign(claims), 422, "ticket-invalid")  # another key, same claims
    head, body, sig = real.split(".")
    tampered = json.loads(jwt.utils.base64url_decode(body))
    tampered["sub"] = "thief"
    forged_body = jwt.utils.base64url_encode(json.dumps(tampered).encode()).decode()
    await refused(f"{head}.{forged_body}.{sig}", 422, "ticket-invalid")  # claims changed
    await refused(ticket_keys.sign({**claims, "iat": now - 10, "exp": now - 5}), 422,
                  "ticket-expired")  # fmt: skip
    await refused(ticket_keys.sign({**claims, "aud": "guichet"}), 422, "ticket-invalid")
    await refused(ticket_keys.sign({**claims, "tid": f"{bought['id']}.4"}), 404, "ticket-unknown")
    await refused(ticket_keys.sign({**claims, "sub": "thief"}), 404, "ticket-unknown")
    await refused(ticket_keys.sign({**claims, "tid": "nope"}), 422, "ticket-invalid")
    gates = {"Authorization": f"Bearer {tokens.admin('gates:scan')}"}
    resp = await client.post(SCAN, json={"payload": real}, headers=gates)
    assert resp.status == 422
    assert (await resp.json())["errors"][0]["field"] == "gate"
    for gate in ("G1\n", "", "a b", "x" * 65):
        resp = await client.post(SCAN, json={"payload": real, "gate": gate}, headers=gates)
        assert resp.status == 422, gate
        assert (await resp.json())["errors"][0]["field"] == "gate"
    assert (await scan(client, tokens, real)).status == 200  # none of the above used it
    await counted(client, before, accepted=1, refused=7, forged=3, expired=1, unknown=2,
                  malformed=1)  # fmt: skip


@hypothesis.settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(
    cut=st.integers(0, 400), noise=st.text(max_size=40),
    raw=st.one_of(st.text(max_size=300), st.binary(max_size=300)),
)  # fmt: skip
async def test_garbled_payloads_are_4xx_never_accepted(
    client: Client, tokens: Tokens, cut: int, noise: str, raw: str | bytes
) -> None:
    """Garbled JWS-looking payloads and arbitrary bodies: a 4xx problem, never a scan."""
    payload = "eyJhbGciOiJFZERTQSJ9.eyJ0aWQiOiJ4In0.c2ln"
    garbled = payload[:cut] + noise + payload[cut:]
    resp = await scan(client, tokens, garbled)
    assert 400 <= resp.status < 500, await resp.text()
    headers = {"Authorization": f"Bearer {tokens.admin('gates:scan')}",
               "Content-Type": "application/json"}  # fmt: skip
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    resp = await client.post(SCAN, data=data, headers=headers)
    assert 400 <= resp.status < 500, await resp.text()
    assert resp.content_type == "application/problem+json"


async def test_the_ticket_key_is_published_beside_the_admission_keys(
    client: Client, ticket_keys: Keyring
) -> None:
    keys = (await (await client.get("/.well-known/jwks.json")).json())["keys"]
    assert ticket_keys.jwk in keys
    assert len(keys) == 2  # the admission key and the ticket key


async def test_openapi_documents_the_ticket_routes(client: Client) -> None:
    resp = await client.get("/openapi.json")
    doc = await resp.json()
    validate(doc)
    paths = doc["paths"]
    assert paths["/v1/sales/{sale}/tickets"]["get"]["security"] == [{"accountBearer": []}]
    one = paths["/v1/sales/{sale}/tickets/{ticket}"]["get"]
    assert set(one["responses"]["200"]["content"]) == {
        "application/json", "image/svg+xml", "image/png"}  # fmt: skip
    fmt = {"type": "string", "enum": ["json", "svg", "png"]}
    assert {"name": "format", "in": "query", "required": False, "schema": fmt} in one["parameters"]
    scan_op = paths[SCAN]["post"]
    assert scan_op["security"] == [{"adminBearer": []}]
    assert {"401", "403", "404", "409", "422"} <= set(scan_op["responses"])
    schemas = doc["components"]["schemas"]
    assert set(schemas["ScanRequest"]["required"]) == {"payload", "gate"}
    assert schemas["ScanRequest"]["additionalProperties"] is False
    assert {"Ticket", "Tickets", "Scanned"} <= set(schemas)


async def test_a_gate_checks_a_payload_offline_with_the_saved_jwks(
    client: Client, tokens: Tokens, store: Store, settings: Settings, tmp_path: Path,
    other_keys: Keyring, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """``guichet ticket verify PAYLOAD --jwks F``: no server, no Redis, only the JWKS."""
    await setup_sale(client, tokens)
    bought = await buy(client, tokens, store, "fan", {"packs": [pack(0, 1, 2)]})
    payload = (await my_tickets(client, tokens, "fan"))[2]["payload"]
    jwks = await (await client.get("/.well-known/jwks.json")).read()
    saved, config = tmp_path / "jwks.json", tmp_path / "gate.toml"

    def offline(p: str) -> int:
        saved.write_bytes(jwks)
        settings_file(settings, config)
        return cli.main(["--config", str(config), "ticket", "verify", p, "--jwks", str(saved)])

    assert await asyncio.to_thread(offline, payload) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["ticket"], shown["account"], shown["session"]) == (
        f"{bought['id']}.3", "fan", "ATH-02")  # fmt: skip
    claims = jwt.decode(payload, options={"verify_signature": False})
    assert await asyncio.to_thread(offline, other_keys.sign(claims)) == 1
    assert "refused (forged)" in capsys.readouterr().err
    assert await asyncio.to_thread(offline, payload[:-3] + "xyz") == 1
    assert await asyncio.to_thread(offline, "garbage") == 1
    assert "refused (malformed)" in capsys.readouterr().err
