"""Issue 15: every admin and operator route of the OpenAPI is walked against the audit log.

The routes of rooms, draws, sales and gates are walked by ``test_audit_acts_sale.ROUTES``, the
State programme's by ``test_audit_acts_programme.ROUTES``; the rest (privacy, the audit log's
own reading, ops status) here. Here every chain counts: a success adds exactly the records its
case says, summed over EVERY chain (so a record written in the wrong chain shows), a refusal
(4xx problem) adds none. Reads add none, except a read of a beneficiary's data (an act of
access, one record). The union of the tables must be the OpenAPI's admin routes: a new admin
route without its case fails here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from guichet.store.client import Store
from tests.conftest import Client, Tokens
from tests.e2e import test_audit_acts_programme as programme_table
from tests.e2e import test_audit_acts_sale as sale_table
from tests.e2e.audit_helpers import total_records
from tests.e2e.programme_helpers import admin_token, bearer, declared  # noqa: F401 (fixture)
from tests.e2e.test_privacy_http import ACCESS, ERASURE, setup, who

pytestmark = pytest.mark.usefixtures("declared")


Call = Callable[[Client, Tokens, dict[str, Any]], Awaitable[aiohttp.ClientResponse]]


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    records: int  # what a success adds, over every chain
    ok: Call
    refused: Call


def _dpo(tokens: Tokens) -> dict[str, str]:
    return bearer(admin_token(tokens, "privacy:dpo", subject="dpo-1"))


def _reader(tokens: Tokens, scope: str = "audit:read") -> dict[str, str]:
    return bearer(admin_token(tokens, scope, subject="auditor-1"))


OTHERS: list[Case] = [
    Case("GET", "/v1/admin/status", 0,
         lambda c, t, s: c.get("/v1/admin/status", headers=_reader(t, "ops:read")),
         lambda c, t, s: c.get("/v1/admin/status")),
    Case("POST", ACCESS, 1,
         lambda c, t, s: c.post(ACCESS, json=who(s["bodies"][1]), headers=_dpo(t)),
         lambda c, t, s: c.post(ACCESS, json=who(s["bodies"][1], extra=1), headers=_dpo(t))),
    Case("POST", ERASURE, 1,
         lambda c, t, s: c.post(ERASURE, json=who(s["bodies"][2], programme="youth-75"),
                                headers=_dpo(t)),
         lambda c, t, s: c.post(ERASURE, json=who(s["bodies"][2], programme="youth-75"),
                                headers=_dpo(t))),  # erased already: 404, nothing recorded
    Case("GET", "/v1/admin/audit", 0,
         lambda c, t, s: c.get("/v1/admin/audit", headers=_reader(t)),
         lambda c, t, s: c.get("/v1/admin/audit", headers=_reader(t, "rooms:read"))),
    Case("GET", "/v1/admin/audit/{chain}", 0,
         lambda c, t, s: c.get("/v1/admin/audit/taj:olympic?limit=2", headers=_reader(t)),
         lambda c, t, s: c.get("/v1/admin/audit/taj:olympic?limit=0", headers=_reader(t))),
]  # fmt: skip


async def test_the_tables_walk_every_admin_and_operator_route_of_the_openapi(
    client: Client,
) -> None:
    paths = (await (await client.get("/openapi.json")).json())["paths"]
    admin = {(m.upper(), p) for p, ops in paths.items() for m, op in ops.items()
             if {"adminBearer": []} in op.get("security", [])}  # fmt: skip
    walked = (
        [(c.method.upper(), c.path) for c in sale_table.ROUTES]
        + [(c.method.upper(), c.path) for c in programme_table.ROUTES]
        + [(c.method, c.path) for c in OTHERS]
    )
    assert set(walked) == admin  # (a route may have several cases: a sale and a programme scan)


async def test_privacy_audit_and_status_routes_write_what_they_should_in_every_chain(
    client: Client, tokens: Tokens, store: Store
) -> None:
    state = await setup(client, tokens)
    for case in OTHERS:
        name = f"{case.method} {case.path}"
        before = await total_records(store)
        ok = await case.ok(client, tokens, state)
        assert 200 <= ok.status < 300, (name, ok.status, await ok.text())
        assert await total_records(store) == before + case.records, name
        after = await total_records(store)
        refused = await case.refused(client, tokens, state)
        assert 400 <= refused.status < 500, (name, refused.status, await refused.text())
        assert refused.content_type == "application/problem+json", name
        assert await total_records(store) == after, name
