"""A conflict-of-interest declaration holds ``programme.declaration_valid_days`` from its
filing; with 0 it expires as it is filed, and the agent's acts are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from guichet.config import Settings
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys, audit_chain
from tests.conftest import Backend, Client, Tokens, make_settings
from tests.e2e.programme_helpers import central, declare, pool_rows


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(tmp_path, backend.redis_section,
                         programme={"declaration_valid_days": 0})  # fmt: skip


async def test_an_expired_declaration_bars_the_agent_until_refiled_valid(
    client: Client, tokens: Tokens, store: Store
) -> None:
    c = central(tokens)
    filed = await declare(client, c)
    assert filed["until"] == filed["at"]
    chain = audit_chain("taj:olympic")
    before: Any = await store.client.xlen(chain)
    resp = await client.put("/v1/admin/programme/pool", json={"tickets": pool_rows()}, headers=c)
    assert resp.status == 403, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["type"].endswith("/declaration-required")
    assert body["context"]["reason"] == "expired"
    assert not await store.client.exists(ProgrammeKeys("olympic").loaded)
    assert await store.client.xlen(chain) == before
