"""Setting up the State programme over HTTP, as the central coordinator does it: a pool, a
programme, an allocation. Tokens for the three admin roles (central, an operator bound to its
programmes, an auditor). For the tests of every part of the programme."""

from __future__ import annotations

from typing import Any

import pytest

from guichet import auth
from guichet.programme import roles
from tests.conftest import Client, Tokens

DAY = "2024-08-01"


def admin_token(tokens: Tokens, *scopes: str, subject: str = "central-1",
                programmes: list[str] | None = None) -> str:  # fmt: skip
    return auth.mint(
        tokens.key, issuer=tokens.sec.issuer, audience=tokens.sec.admin_audience,
        subject=subject, ttl_s=600, scopes=list(scopes), programmes=programmes,
        programmes_claim=tokens.sec.programmes_claim,
    )  # fmt: skip


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def central(tokens: Tokens, subject: str = "central-1") -> dict[str, str]:
    return bearer(admin_token(tokens, roles.CENTRAL, subject=subject))


def operator(tokens: Tokens, *programmes: str, subject: str = "op-1") -> dict[str, str]:
    return bearer(admin_token(tokens, roles.OPERATE, subject=subject, programmes=list(programmes)))


def auditor(tokens: Tokens) -> dict[str, str]:
    return bearer(admin_token(tokens, roles.AUDIT, subject="auditor-1"))


#: The subjects the helpers' tokens act as (central-1, op-1) and others the tests use.
DECLARANTS = ("central-1", "op-1", "op-2", "op-q", "dijop", "dijop-7", "admin:test")


async def declare(client: Client, headers: dict[str, str], games: str = "olympic",
                  conflicts: list[dict[str, str]] | None = None) -> dict[str, Any]:  # fmt: skip
    """File the caller's conflict-of-interest declaration (AFA) for ``games``."""
    resp = await client.put("/v1/admin/programme/declaration", headers=headers,
                            json={"games": games, "conflicts": conflicts or []})  # fmt: skip
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def declare_all(client: Client, tokens: Tokens, *subjects: str) -> None:
    """Every agent the tests act as declares no conflict, for both games: a programme act by an
    operator or central token needs a current declaration."""
    for subject in subjects or DECLARANTS:
        for games in ("olympic", "paralympic"):
            await declare(client, central(tokens, subject=subject), games)


@pytest.fixture
async def declared(client: Client, tokens: Tokens) -> None:
    """Use with ``pytestmark = pytest.mark.usefixtures("declared")``: the helpers' agents have
    declared (no conflict) before the test acts."""
    await declare_all(client, tokens)


def pool_rows(sessions: int = 3, categories: str = "AB", quantity: int = 100,
              games: str = "olympic", prefix: str = "ATH") -> list[dict[str, Any]]:  # fmt: skip
    """``sessions`` sessions PREFIX-00…, each with these categories and quantity."""
    return [
        {"games": games, "session": f"{prefix}-{i:02d}", "date": f"2024-08-{i + 1:02d}",
         "name": f"Session {i}", "category": c, "quantity": quantity}
        for i in range(sessions) for c in categories
    ]  # fmt: skip


async def load_pool(client: Client, tokens: Tokens, rows: list[dict[str, Any]]) -> dict[str, Any]:
    resp = await client.put("/v1/admin/programme/pool", json={"tickets": rows},
                            headers=central(tokens))  # fmt: skip
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def programme_body(games: str = "olympic", public: str = "youth", **more: Any) -> dict[str, Any]:
    body = {"public": public, "games": games, "operator": "op-1",
            "retention_until": "2024-12-31", "criteria": ["age-16-25", "resident"]}  # fmt: skip
    return {**body, **more}


async def put_programme(
    client: Client, tokens: Tokens, programme: str, **body: Any
) -> dict[str, Any]:
    resp = await client.put(f"/v1/admin/programmes/{programme}", json=programme_body(**body),
                            headers=central(tokens))  # fmt: skip
    assert resp.status in (200, 201), await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


async def allocate(
    client: Client, tokens: Tokens, programme: str, items: dict[str, int]
) -> dict[str, Any]:
    """``items``: "SESSION:CATEGORY" -> quantity."""
    body = {"items": [{"session": k.partition(":")[0], "category": k.partition(":")[2],
                       "quantity": q} for k, q in items.items()]}  # fmt: skip
    resp = await client.post(f"/v1/admin/programmes/{programme}/allocations", json=body,
                             headers=central(tokens))  # fmt: skip
    assert resp.status == 200, await resp.text()
    answer: dict[str, Any] = await resp.json()
    return answer


async def setup_programme(
    client: Client, tokens: Tokens, programme: str = "youth-75", *, games: str = "olympic",
    allocation: dict[str, int] | None = None, pool: list[dict[str, Any]] | None = None,
    **body: Any,
) -> dict[str, Any]:  # fmt: skip
    """A pool (unless this games' is loaded already), a programme, and an allocation (default:
    10 tickets of ATH-00:A). Returns the programme as GET shows it."""
    check = await client.get(f"/v1/admin/programme/pool?games={games}", headers=central(tokens))
    if not (await check.json())["items"]:
        await load_pool(client, tokens, pool or pool_rows(games=games))
    await put_programme(client, tokens, programme, games=games, **body)
    await allocate(client, tokens, programme, allocation or {"ATH-00:A": 10})
    resp = await client.get(f"/v1/admin/programmes/{programme}", headers=central(tokens))
    answer: dict[str, Any] = await resp.json()
    return answer
