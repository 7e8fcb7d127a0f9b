"""Schemathesis with every check against a real ``guichet serve`` and its ``/openapi.json``:
the schema says what the server enforces, and the server answers what the schema says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from guichet.embedded import free_port
from tests.conftest import Client
from tests.e2e.processes import ROOT, Served, guichet

ADMIN_SCOPES = ("ops:read", "rooms:read", "rooms:write", "draws:write", "sales:write", "gates:scan",
                "programme:central", "programme:operate", "programme:audit",
                "rooms:revoke")  # fmt: skip
#: Admin operations outside /v1/admin/ (the protected site's revocation).
ADMIN_PATHS = r"^/v1/admin/|^/v1/rooms/\{room\}/revoke$"
PROGRAMME = "youth-75"  # the admin token operates it (its programmes claim)

#: (method, path, check, why): the only checks left out, each for one operation.
EXCLUDED = (
    # Rules across fields (closes after opens, a per-session cap under the pack cap, a default
    # stratum among the strata) that JSON Schema cannot state: a schema-valid body may be 422.
    ("PUT", "/v1/admin/rooms/{room}", "positive_data_acceptance", "cross-field rules"),
    ("PATCH", "/v1/admin/rooms/{room}", "positive_data_acceptance", "cross-field rules"),
    ("PUT", "/v1/admin/draws/{draw}", "positive_data_acceptance", "cross-field rules"),
    ("PUT", "/v1/admin/sales/{sale}", "positive_data_acceptance", "cross-field rules"),
    # A payload is a ticket only if its Ed25519 signature verifies: no schema can say which
    # strings those are, so a well-formed stranger is 422 `ticket-invalid`.
    ("POST", "/v1/admin/gates/scan", "positive_data_acceptance", "signatures"),
    # A revocation names an admitted session (an account that has none is 404) by a token
    # that must verify, and exactly one of token and account (a rule across fields).
    ("POST", "/v1/rooms/{room}/revoke", "positive_data_acceptance", "sessions, signatures"),
)


def toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def config(account: str, admin: str) -> str:
    bearer = {"account": f"Bearer {account}", "admin": f"Bearer {admin}"}
    out = [
        f"headers = {{ Authorization = {toml_str(bearer['account'])} }}",
        "checks.enabled = true",  # `--checks all`, here so that [[operations]] can leave one out
        'parameters = { room = "final", draw = "lottery", sale = "paris" }',
        # A refusal is any 4xx the schema documents: schemathesis' default list plus 413 and
        # 431 (every operation declares 431: an oversized query or header set is refused
        # before routing, whatever else is wrong with it).
        "checks.negative_data_rejection.expected-statuses = "
        '["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429",'
        ' "431", "5xx"]',
    ]
    for method, path, check, _why in EXCLUDED:
        who = "admin" if re.search(ADMIN_PATHS, path) else "account"
        out += [
            "[[operations]]",
            f"include-path = {toml_str(path)}",
            f'include-method = "{method}"',
            f"headers = {{ Authorization = {toml_str(bearer[who])} }}",
            f"checks.{check}.enabled = false",
        ]
    out += [  # after the specific ones: the first matching entry applies
        "[[operations]]",
        f"include-path-regex = {toml_str(ADMIN_PATHS)}",
        f"headers = {{ Authorization = {toml_str(bearer['admin'])} }}",
    ]
    return "\n".join(out) + "\n"


async def test_the_schema_says_what_the_server_enforces(client: Client) -> None:
    doc = await (await client.get("/openapi.json")).json()
    schemas, paths = doc["components"]["schemas"], doc["paths"]
    opens = schemas["RoomSpec"]["properties"]["opens_at"]["pattern"]
    assert re.search(opens, "2026-01-01T00:00:00Z")
    assert not re.search(opens, "")  # an empty string is not a date-time
    holds = paths["/v1/sales/{sale}/holds"]["post"]
    one_of = holds["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert [branch["required"] for branch in one_of] == [["packs"], ["items"]]
    assert {p["name"] for p in holds["parameters"]} >= {"Idempotency-Key", "X-Admission-Token"}
    consent = schemas["EntryRequest"]["properties"]["accept_rules"]
    assert consent.get("const") is True or consent.get("enum") == [True], consent
    for path, method in (("/v1/rooms/{room}/join", "post"), ("/v1/admin/rooms/{room}", "put"),
                         ("/v1/admin/draws/{draw}", "put"), ("/v1/admin/sales/{sale}", "put"),
                         ("/v1/draws/{draw}/entries", "post")):  # fmt: skip
        assert {"200", "201", "431"} <= set(paths[path][method]["responses"]), path


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_schemathesis_all_checks_find_no_failure(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GUICHET_SERVER_PORT": str(port)}

    def cli(*args: str) -> str:
        run = subprocess.run([sys.executable, *guichet(*args)], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    served = Served(guichet("serve"), cwd=tmp_path, env={"GUICHET_SERVER_PORT": str(port)})
    try:
        served.wait_msg("listening", port=port, timeout=60)
        cli("shop", "put", "paris", "--games", "olympic", "--opens", "2026-01-01T00:00Z",
            "--closes", "2030-01-01T00:00Z")  # fmt: skip
        cli("shop", "load", "paris", "--demo")
        cli("draw", "put", "lottery", "--opens", "2026-01-01T00:00Z", "--closes",
            "2029-01-01T00:00Z", "--strata", "club,general", "--sale", "paris")  # fmt: skip
        cli("room", "put", "final", "--opens-at", "2026-01-01T00:00Z", "--closes-at",
            "2030-01-01T00:00Z", "--rate", "2", "--max-active", "100", "--audience", "shop",
            "--target-url", "https://shop.example/")  # fmt: skip
        (tmp_path / "pool.csv").write_text(
            "games,session,date,name,category,quantity\nolympic,ATH-01,2030-07-27,Athletics,D,50\n"
        )
        cli("programme", "pool", "load", "pool.csv")
        cli("programme", "put", PROGRAMME, "--public", "youth", "--games", "olympic",
            "--operator", "rectorat", "--reclaim-on", "2030-05-01", "--retention-until",
            "2030-12-31", "--criteria", "age-12-25")  # fmt: skip
        cli("programme", "allocate", PROGRAMME, "--item", "ATH-01:D:10")
        account = cli("token", "--account", "acc-1")
        admin = cli("token", "--admin", *(a for s in ADMIN_SCOPES for a in ("--scope", s)),
                    "--programme", PROGRAMME)  # fmt: skip
        (tmp_path / "schemathesis.toml").write_text(config(account, admin))
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", "schemathesis.toml",
             "--no-color", "run", f"http://127.0.0.1:{port}/openapi.json",
             "--max-examples", "8", "--max-time", "120", "--seed", "13"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=200, check=False,
        )  # fmt: skip
    finally:
        served.stop()
    report = "\n".join(line[:300] for line in run.stdout.splitlines())  # long curls cut
    assert run.returncode == 0, report[-15000:] + run.stderr[-3000:]
    assert "Failures:" not in report, report[-15000:]
