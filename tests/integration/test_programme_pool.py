"""The pool's scripts against a real Valkey (standalone, or the Cluster): the invariant under
racing allocations, the audit catching a corrupted count, reclaim resumed after a crash."""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path
from typing import Any

import msgspec
import pytest

from guichet import cli
from guichet.audit.act import cli_actor
from guichet.config import Settings
from guichet.programme import pool
from guichet.programme.acting import Acting, internal
from guichet.programme.pool_service import PoolService, audit
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys, audit_chain
from tests.conftest import settings_file

ROWS = "games,session,date,name,category,quantity\n" + "".join(
    f"olympic,ATH-{i:02d},2024-08-0{i + 1},Session {i},{c},{q}\n"
    for i in range(3) for c, q in (("A", 37), ("B", 100))
)  # fmt: skip


def act(actor: str = "central-1") -> Acting:
    """An act through the service layer, recorded as ``actor``'s."""
    return internal(actor, "programme.test", "programme:test")


def body(reclaim_on: date | None = None) -> pool.ProgrammeBody:
    return pool.ProgrammeBody(public="youth", games="olympic", operator="op-1",
                              retention_until=date(3000, 1, 1), criteria=["age"],
                              reclaim_on=reclaim_on)  # fmt: skip


async def loaded(store: Store, *programmes: str, reclaim_on: date | None = None) -> PoolService:
    service = PoolService(store)
    [answer] = await service.load(pool.parse_csv(ROWS), act())
    assert answer.code == "ok"
    assert answer.tickets == 411
    for p in programmes:
        assert (await service.put(p, body(reclaim_on), act())).code == "created"
    return service


async def test_50_allocations_racing_for_the_last_tickets(store: Store) -> None:
    """37 tickets of ATH-00:A, 50 programmes asking 1 each (and 2 of ATH-01:B in the same
    all-or-nothing request): exactly 37 win, the invariant holds after."""
    programmes = [f"p-{i:02d}" for i in range(50)]
    service = await loaded(store, *programmes)
    answers = await asyncio.gather(*(
        service.allocate(p, {"ATH-01:B": 2, "ATH-00:A": 1}, act()) for p in programmes
    ))  # fmt: skip
    won = [a for a in answers if a.code == "ok"]
    assert len(won) == 37
    assert {(a.code, a.item, a.tickets) for a in answers if a.code != "ok"} == {
        ("pool_short", "ATH-00:A", 0)
    }
    levels = await service.levels("olympic")
    assert levels.pool["ATH-00:A"] == 0
    assert levels.pool["ATH-01:B"] == 100 - 2 * 37  # the losers took nothing at all
    assert sum(a.get("ATH-00:A", 0) for a in levels.alloc.values()) == 37
    assert audit(levels) == []
    stats = [await service.stats(p, "olympic") for p in programmes]
    assert sum(s.get("allocated", 0) for s in stats) == 37 * 3


async def test_the_audit_names_a_corrupted_item(
    store: Store, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = await loaded(store, "youth-75")
    assert (await service.allocate("youth-75", {"ATH-02:B": 10}, act("c"))).code == "ok"
    config = str(settings_file(settings, tmp_path / "ops.toml"))
    assert await asyncio.to_thread(cli.main, ["--config", config, "programme", "audit"]) == 0
    capsys.readouterr()
    k = ProgrammeKeys("olympic")
    await store.client.hincrby(k.alloc("youth-75"), "ATH-02:B", 1)  # a ticket from nowhere
    await store.client.hset(k.assigned, "ATH-00:A", -1)
    problems = audit(await service.levels("olympic"))
    assert problems == [
        "ATH-00:A: pool 37 + allocated 0 + assigned -1 + used 0 != loaded 37",
        "ATH-00:A: negative count in assigned",
        "ATH-02:B: pool 90 + allocated 11 + assigned 0 + used 0 != loaded 100",
    ]
    code = await asyncio.to_thread(cli.main, ["--config", config, "programme", "audit",
                                              "--games", "olympic"])  # fmt: skip
    out, _ = capsys.readouterr()
    assert code == 1
    assert "BREACH olympic: ATH-02:B: pool 90 + allocated 11" in out


async def test_reclaim_resumes_after_a_crash_and_refuses_before_its_date(
    store: Store, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = await loaded(store, "a", "b", "c", reclaim_on=date(2024, 5, 1))
    for p, n in (("a", 5), ("b", 7), ("c", 0)):
        if n:
            assert (await service.allocate(p, {"ATH-01:A": n}, act())).code == "ok"
    # A reclaim killed after its first programme: 'a' is done, 'b' and 'c' are not.
    first = await service.reclaim("a", act("cli:ops"))
    assert (first.code, first.tickets) == ("ok", 5)
    config = str(settings_file(settings, tmp_path / "ops.toml"))
    capsys.readouterr()
    argv = ["--config", config, "programme", "reclaim", "--games", "olympic"]
    assert await asyncio.to_thread(cli.main, argv) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines() == [
        "a: reclaimed before; nothing to do",
        "b: 7 tickets returned to the pool",
        "c: 0 tickets returned to the pool",
    ]
    levels = await service.levels("olympic")
    assert levels.pool["ATH-01:A"] == 37
    assert audit(levels) == []
    assert sorted(await service.reclaimed("olympic")) == ["a", "b", "c"]
    assert await asyncio.to_thread(cli.main, argv) == 0  # idempotent
    assert "b: reclaimed before" in capsys.readouterr().out
    # The olympic default (1 May 2024) has passed; a date far ahead has not.
    assert (await service.put("z", body(date(2999, 5, 1)), act("central-1"))).code == "created"
    assert (await service.allocate("z", {"ATH-01:A": 1}, act())).code == "ok"
    assert await asyncio.to_thread(cli.main, argv) == 1
    out, err = capsys.readouterr()
    assert "z: NOT reclaimed: its reclaim date is 2999-04-30T22:00:00Z" in out
    assert "cannot be reclaimed before their reclaim date" in err
    assert (await service.allocation("z", "olympic")) == {"ATH-01:A": 1}


async def test_the_cli_loads_the_pool_file_once_and_names_a_bad_line(
    store: Store, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(settings_file(settings, tmp_path / "ops.toml"))
    bad = tmp_path / "bad.csv"
    bad.write_text(ROWS + "olympic,ATH-09,2024-08-09,X,A,-1\n")
    argv = ["--config", config, "programme", "pool", "load"]
    assert await asyncio.to_thread(cli.main, [*argv, str(bad)]) == 1
    assert "line 8: quantity" in capsys.readouterr().err
    good = tmp_path / "pool.csv"
    good.write_text(ROWS)
    assert await asyncio.to_thread(cli.main, [*argv, str(good)]) == 0
    assert "olympic: 3 sessions, 6 items, 411 tickets loaded" in capsys.readouterr().out
    assert await asyncio.to_thread(cli.main, [*argv, str(good)]) == 1
    assert "loaded already (411 tickets)" in capsys.readouterr().err
    put = ["--config", config, "programme", "put", "youth-75", "--public", "youth", "--games",
           "olympic", "--operator", "op-1", "--retention-until", "2024-12-31", "--criteria",
           "age-16-25,resident"]  # fmt: skip
    with pytest.raises(SystemExit):  # no option names another actor than the OS user
        await asyncio.to_thread(cli.main, [*put, "--by", "dijop-1"])
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, put) == 0
    assert "reclaim on 2024-05-01" in capsys.readouterr().out
    spec = await PoolService(store).spec("youth-75")
    assert spec is not None
    assert (spec.by, spec.criteria) == (cli_actor(), ["age-16-25", "resident"])
    assert spec.at > 1_700_000_000_000_000  # µs, exact (Redis TIME)
    alloc = ["--config", config, "programme", "allocate", "youth-75", "--item", "ATH-00:A:30",
             "--item", "ATH-01:A:8"]  # fmt: skip
    assert await asyncio.to_thread(cli.main, [*alloc[:-2], "--item", "ATH-01:A:38"]) == 1
    assert "37 tickets left in the pool for ATH-01:A" in capsys.readouterr().err
    assert await asyncio.to_thread(cli.main, alloc) == 0
    assert "38 tickets allocated to youth-75" in capsys.readouterr().out
    journal: list[tuple[bytes, dict[bytes, bytes]]] = await store.client.xrange(
        ProgrammeKeys("olympic").journal()
    )  # type: ignore[assignment]
    acts = [(f[b"act"].decode(), f[b"by"].decode()) for _, f in journal]
    assert [a for a, _ in acts] == ["pool_load", "programme_created", "allocate"]
    assert acts[0][1].startswith("cli:")  # every act records its actor
    assert acts[1][1] == cli_actor()
    raw: Any = await store.client.xrange(audit_chain("taj:olympic"))
    recorded = [(f[b"action"].decode(), f[b"actor"].decode()) for _, f in raw]
    assert recorded == [("programme.pool-load", cli_actor()), ("programme.put", cli_actor()),
                        ("programme.allocate", cli_actor())]  # fmt: skip


async def test_a_programme_created_twice_at_once_in_two_games_exists_in_one(store: Store) -> None:
    """The id is claimed in the index before the spec is written: racing PUTs naming different
    games create it in one games' slot, and the index names that one."""
    service = PoolService(store)
    bodies = [msgspec.structs.replace(body(), games=g) for g in ("olympic", "paralympic") * 10]
    answers = await asyncio.gather(
        *(PoolService(store).put("twice", b, act("central")) for b in bodies)
    )
    created = {a.spec.games for a in answers if a.spec is not None}
    assert len(created) == 1
    refused = [a for a in answers if a.spec is None]
    assert len(refused) == 10  # the other games: refused, naming the one it has
    games = created.pop()
    assert await service.games_of("twice") == games
    other = "paralympic" if games == "olympic" else "olympic"
    assert await store.client.hget(ProgrammeKeys(other).programmes, "twice") is None
    assert await store.client.hget(ProgrammeKeys(games).programmes, "twice") is not None
