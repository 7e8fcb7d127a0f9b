"""Privacy gaps closed (issue 15 review items 7 and 8): the person export lists the
conflict-of-interest declarations naming them; the retention purge leaves no pseudonym in the
declarations (an expired one goes whole, a current one keeps its other conflicts); access and
erasure read the person's lottery from their records instead of scanning the keyspace."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from guichet.config import Settings
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys
from tests.conftest import Client, Tokens
from tests.e2e.programme_helpers import (
    central,
    declare,
    declared,  # noqa: F401 (the fixture)
)
from tests.e2e.test_privacy_http import (
    ACCESS,
    ERASURE,
    P,
    cli,
    dpo,
    keys_holding,
    records,
    setup,
    who,
)
from tests.programme_seed_b import set_retention

pytestmark = pytest.mark.usefixtures("declared")
DECLARATIONS = ProgrammeKeys("olympic").declarations


async def test_the_person_export_lists_the_declarations_naming_them(
    client: Client, store: Store, tokens: Tokens
) -> None:
    s = await setup(client, tokens)
    people = s["people"]
    filed = await declare(client, central(tokens, subject="op-9"),
                          conflicts=[{"pseudonym": people[1]}, {"programme": "other"}])  # fmt: skip
    r = await client.post(ACCESS, json=who(s["bodies"][1]), headers=dpo(tokens))
    assert r.status == 200, await r.text()
    export = await r.json()
    assert export["declarations"] == [{"games": "olympic", "at": filed["at"],
                                       "until": filed["until"]}]  # fmt: skip
    assert "op-9" not in json.dumps(export)  # the declarant is a third party
    r = await client.post(ACCESS, json=who(s["bodies"][2]), headers=dpo(tokens))
    assert "declarations" not in await r.json()
    # erased candidacy, still named in a declaration: the export still answers, with it
    r = await client.post(ERASURE, json=who(s["bodies"][1], programme=P), headers=dpo(tokens))
    assert r.status == 200, await r.text()
    r = await client.post(ACCESS, json=who(s["bodies"][1]), headers=dpo(tokens))
    assert r.status == 200, await r.text()
    body = await r.json()
    assert (body.get("candidacies"), len(body["declarations"])) == (None, 1)
    assert [x["action"] for x in await records(store)] == ["privacy.access"] * 2 + [
        "privacy.erase",
        "privacy.access",
    ]


async def test_the_retention_purge_leaves_no_pseudonym_in_the_declarations(
    client: Client, store: Store, tokens: Tokens, settings: Settings, tmp_path: Path
) -> None:
    s = await setup(client, tokens)
    people = s["people"]
    await declare(client, central(tokens, subject="op-9"),
                  conflicts=[{"pseudonym": people[0]}, {"programme": "other"}])  # fmt: skip
    # an expired declaration naming another candidate (as declare.lua writes it)
    old = {
        "at": 1700000000000000,
        "until": 1700000000000001,
        "conflicts": [{"pseudonym": people[2]}],
    }
    await store.client.hset(DECLARATIONS, "op-old", json.dumps(old, separators=(",", ":")))
    assert {n for _, n in await keys_holding(store, people)} == set(people)
    await set_retention(store, P, (date.today() - timedelta(days=2)).isoformat())
    code, out = await cli(settings, tmp_path, "privacy", "purge", "--games", "olympic")
    assert code == 0, out
    assert await keys_holding(store, people) == []
    # the current declaration kept, its programme conflict too; the expired one gone whole
    raw: Any = await store.client.hgetall(DECLARATIONS)
    assert b"op-old" not in raw
    kept = json.loads(raw[b"op-9"])
    assert kept["conflicts"] == [{"programme": "other"}]
    assert kept["until"] > kept["at"] > 1_700_000_000_000_000  # µs kept exactly as integers
    r = await client.get("/v1/admin/programme/declarations?games=olympic",
                         headers=central(tokens))  # fmt: skip
    assert r.status == 200, await r.text()


async def _scans(store: Store) -> int:
    stats: Any = await store.client.info("commandstats")
    return int(stats.get("cmdstat_scan", {}).get("calls", 0))


async def test_access_and_erasure_do_not_scan_the_keyspace(
    client: Client, store: Store, tokens: Tokens
) -> None:
    s = await setup(client, tokens)
    before = await _scans(store)
    r = await client.post(ACCESS, json=who(s["bodies"][0]), headers=dpo(tokens))
    assert r.status == 200, await r.text()
    assert (await r.json())["candidacies"][0]["lottery_state"] == "open"
    r = await client.post(ERASURE, json=who(s["bodies"][2], programme=P), headers=dpo(tokens))
    assert r.status == 200, await r.text()
    assert await _scans(store) == before
