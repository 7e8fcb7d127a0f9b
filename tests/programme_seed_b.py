"""Store-level seeding for slice B's tests (people): the sessions, a programme's spec and its
index entry, a lottery — written as p14-spec.md specifies the keys, because the pool and
designation parts (slices A and C) are built in parallel. The integrator switches these to
their APIs after the merge."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from guichet.programme.pool import withdraw_until_us
from guichet.store.client import Store
from guichet.store.keys import PROGRAMMES_INDEX, ProgrammeKeys

GAMES = "olympic"
SESSION = "ATH-01"
SESSION_DAY = "2024-08-02"
CRITERIA = ["age-16-25", "resident-idf"]
SECRET_HEX = "a1" * 32
NAME_KEY_HEX = "b2" * 32
PROGRAMME_SETTINGS: dict[str, object] = {"pseudonym_secret": SECRET_HEX, "name_key": NAME_KEY_HEX}


async def seed_programme(
    store: Store,
    programme: str,
    *,
    games: str = GAMES,
    criteria: list[str] | None = None,
    retention_until: str = "2099-12-31",
    lotteries: tuple[str, ...] = ("main",),
    lottery_state: str = "open",
    closes_at_us: int | None = None,
) -> ProgrammeKeys:
    """A session, the programme's spec and index entry, and its open lotteries."""
    k = ProgrammeKeys(games)
    session = {"date": SESSION_DAY, "games": games, "name": "Athletics final",
               "withdraw_until_us": withdraw_until_us(date.fromisoformat(SESSION_DAY))}  # fmt: skip
    await store.client.hset(k.sessions, SESSION, json.dumps(session))
    spec: dict[str, Any] = {
        "id": programme, "public": "youth", "games": games, "operator": "ministry-sports",
        "reclaim_on": "2024-05-01", "retention_until": retention_until,
        "criteria": CRITERIA if criteria is None else criteria, "by": "central:test",
        "at": 1_700_000_000_000_000,
    }  # fmt: skip
    await store.client.hset(k.programmes, programme, json.dumps(spec))
    await store.client.hset(PROGRAMMES_INDEX, programme, games)
    for lottery in lotteries:
        key = k.lottery(programme, lottery)
        await store.client.hset(key, mapping={"session": SESSION, "category": "A",
                                              "state": lottery_state})  # fmt: skip
        if closes_at_us is not None:
            await store.client.hset(key, "closes_at", closes_at_us)
    return k


async def set_retention(store: Store, programme: str, day: str, games: str = GAMES) -> None:
    """Change the programme's retention date (as the central role would)."""
    k = ProgrammeKeys(games)
    spec = json.loads(await value(store, k.programmes, programme))
    spec["retention_until"] = day
    await store.client.hset(k.programmes, programme, json.dumps(spec))


async def value(store: Store, key: str, field: str) -> bytes:
    """A hash field that must exist."""
    found = await store.client.hget(key, field)
    assert isinstance(found, bytes), (key, field)
    return found
