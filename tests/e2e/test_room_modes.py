"""The queueing modes over HTTP, each under 500 concurrent joins: fifo and shuffle-then-fifo
order, the random draw (fair, complete, no one twice), passthrough (all straight in), reject
(no one in), live switches applied at the next tick, and bad values refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import jwt
import numpy as np
import pytest
from aiohttp import ClientSession, TCPConnector

from guichet.config import Settings
from guichet.errors import PROBLEM_CONTENT_TYPE, TYPE_BASE
from guichet.room.model import queue_order
from tests.conftest import Backend, Client, Tokens, make_settings, metric_value
from tests.e2e.room_helpers import eventually
from tests.e2e.test_room_cli import run_cli, write_config

ROOM = "modes"
Json = dict[str, Any]
T = TypeVar("T")


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(
        tmp_path,
        backend.redis_section,
        rooms={"join_per_ip_per_min": 10_000_000, "join_ip_burst": 100_000,
               "join_account_burst": 100, "tick_interval_s": 0.05},
    )  # fmt: skip


@pytest.fixture
async def bearers(tokens: Tokens) -> dict[str, str]:
    minted = await asyncio.to_thread(
        lambda: {f"acc-{i}": tokens.account(f"acc-{i}") for i in range(600)}
    )
    return {a: f"Bearer {t}" for a, t in minted.items()}


def room_spec(opens_in_s: float = -1, **extra: Any) -> Json:
    now = datetime.now(UTC)
    return {
        "opens_at": (now + timedelta(seconds=opens_in_s)).isoformat(),
        "closes_at": (now + timedelta(hours=3)).isoformat(),
        "rate_per_s": 1000,
        "max_active": 1_000_000,
        "audience": "shop",
        "target_url": "https://shop.example/",
        "paused": True,
        **extra,
    }


class Room:
    """The calls of these tests, over a pool of 200 connections for the crowds."""

    def __init__(self, client: Client, tokens: Tokens, session: ClientSession) -> None:
        self.client = client
        self.session = session
        self.admin = {"Authorization": f"Bearer {tokens.admin('rooms:read', 'rooms:write')}"}

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    async def put(self, spec: Json) -> Json:
        async with self.session.put(
            self.url(f"/v1/admin/rooms/{ROOM}"), json=spec, headers=self.admin
        ) as resp:
            assert resp.status in (200, 201), await resp.text()
            body: Json = await resp.json()
            return body

    async def patch(self, **changes: Any) -> Json:
        async with self.session.patch(
            self.url(f"/v1/admin/rooms/{ROOM}"), json=changes, headers=self.admin
        ) as resp:
            assert resp.status == 200, await resp.text()
            body: Json = await resp.json()
            return body

    async def stats(self) -> Json:
        async with self.session.get(self.url(f"/v1/admin/rooms/{ROOM}"), headers=self.admin) as r:
            assert r.status == 200, await r.text()
            body: Json = await r.json()
            return body

    async def join(self, bearer: str) -> tuple[int, Json]:
        async with self.session.post(
            self.url(f"/v1/rooms/{ROOM}/join"), headers={"Authorization": bearer}
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def join_all(self, bearers: dict[str, str]) -> dict[str, Json]:
        """Every account joins at once; each must get a new ticket."""
        replies = await asyncio.gather(*(self.join(b) for b in bearers.values()))
        for status, body in replies:
            assert status == 201, body
        return {a: body for a, (_, body) in zip(bearers, replies, strict=True)}

    async def status(self, ticket: str) -> Json:
        async with self.session.get(
            self.url(f"/v1/rooms/{ROOM}/status"), headers={"X-Queue-Ticket": ticket}
        ) as resp:
            assert resp.status == 200, await resp.text()
            body: Json = await resp.json()
            return body

    async def statuses(self, tickets: dict[str, Json]) -> dict[str, Json]:
        got = await asyncio.gather(*(self.status(t["ticket"]) for t in tickets.values()))
        return dict(zip(tickets, got, strict=True))

    async def admit(self, bearer: str, ticket: str) -> tuple[int, Json]:
        async with self.session.post(
            self.url(f"/v1/rooms/{ROOM}/admit"),
            headers={"Authorization": bearer, "X-Queue-Ticket": ticket},
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def metrics(self) -> str:
        async with self.session.get(self.url("/metrics")) as resp:
            return await resp.text()


@pytest.fixture
async def room(client: Client, tokens: Tokens) -> Any:
    async with ClientSession(connector=TCPConnector(limit=200)) as session:
        yield Room(client, tokens, session)


async def until(probe: Callable[[], Awaitable[T | None]], what: str, within_s: float = 20.0) -> T:
    return await eventually(probe, what, within_s)


def pre_index(ticket: str) -> int:
    """The join order of a pre-queue ticket (its `tid` "p:<i>:<joined>"), unverified."""
    tid = str(jwt.decode(ticket, options={"verify_signature": False})["tid"])
    assert tid.startswith("p:")
    return int(tid.split(":")[1])


def assert_problem(status: int, body: Json, code: int, slug: str) -> None:
    assert status == code, body
    assert body["type"] == TYPE_BASE + slug, body


# --- fifo and shuffle-then-fifo ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fifo", "shuffle-then-fifo"])
async def test_prequeue_order_follows_the_mode_at_opening_and_survives_a_switch(
    room: Room, bearers: dict[str, str], mode: str
) -> None:
    crowd = dict(list(bearers.items())[:500])
    await room.put(room_spec(opens_in_s=3600, mode=mode))
    joined = await room.join_all(crowd)
    assert {j["mode"] for j in joined.values()} == {mode}
    await room.put(room_spec(opens_in_s=-1, mode=mode))  # ops open the room now
    stats = await until(
        lambda: _opened(room), "the room opened with its seed"
    )  # the first tick opened it
    other = "shuffle-then-fifo" if mode == "fifo" else "fifo"
    await room.patch(mode=other)  # a switch after opening never reorders the pre-queue

    async def numbered() -> dict[str, Json] | None:
        got = await room.statuses(joined)
        # every worker shows the switch from its next tick (two workers: either may answer)
        done = all(s.get("number") is not None and s["mode"] == other for s in got.values())
        return got if done else None

    statuses = await until(numbered, "every pre-queue number, under the new mode")
    seed = bytes.fromhex(stats["shuffle_seed"])
    expected = await asyncio.to_thread(queue_order, seed, 500, mode)  # type: ignore[arg-type]
    for account, s in statuses.items():
        assert s["number"] == int(expected[pre_index(joined[account]["ticket"])])
        assert s["mode"] == other
    numbers = [s["number"] for s in statuses.values()]
    assert sorted(numbers) == list(range(500))
    in_join_order = [statuses[a]["number"] for a in sorted(joined, key=lambda a: pre_index(
        joined[a]["ticket"]))]  # fmt: skip
    assert (in_join_order == list(range(500))) == (mode == "fifo")

    # Then call by number, in order: ready is always a prefix of the numbers.
    await room.patch(paused=False, rate_per_s=500)

    async def all_ready() -> bool | None:
        got = await room.statuses(joined)
        for s in got.values():
            assert (s["state"] == "ready") == (s["number"] < s["serving"]), s
        return True if all(s["state"] == "ready" for s in got.values()) else None

    await until(all_ready, "everyone called")


async def _opened(room: Room) -> Json | None:
    stats = await room.stats()
    return stats if stats["phase"] == "open" and stats["shuffle_seed"] else None


# --- random --------------------------------------------------------------------------------


def spearman(a: list[int], b: list[int]) -> float:
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


async def test_random_draw_calls_everyone_once_in_no_relation_to_join_order(
    room: Room, bearers: dict[str, str]
) -> None:
    accounts = list(bearers)
    first, late = accounts[:500], accounts[500:600]
    await room.put(room_spec(mode="random", rate_per_s=120))
    joined = await room.join_all({a: bearers[a] for a in first})
    assert sorted(j["number"] for j in joined.values()) == list(range(500))
    for j in joined.values():
        assert j["mode"] == "random"
        assert j["state"] == "waiting"
        assert j.get("position") is None
        assert j.get("ahead") is None
        assert j.get("eta_s") is None
    stats = await until(
        lambda: _seeded(room), "the random draw's seed"
    )  # made at the first tick in random mode
    commitment = stats["random_seed_sha256"]
    assert stats.get("random_seed") is None  # not revealed while the room is open
    await room.patch(paused=False)

    called_at: dict[str, int] = {}  # account -> the sweep that first saw it called
    sweep = 0
    async with asyncio.timeout(60):
        while len(called_at) < 600:
            if sweep == 2:  # arrivals while the draw runs
                joined |= await room.join_all({a: bearers[a] for a in late})
            got = await room.statuses(joined)
            for account, s in got.items():
                assert s["mode"] == "random"
                if s["state"] == "ready":
                    called_at.setdefault(account, sweep)
                    assert s["position"] == 0
                else:
                    assert account not in called_at, s  # once called, never back
                    assert s["state"] == "waiting", s
                    assert s.get("position") is None, s
                    assert s.get("ahead") is None, s
                    assert 1 <= s["in_draw"] <= 600, s
            sweep += 1
    assert sweep >= 6, sweep  # the draw was watched while it ran
    assert (await room.stats())["random_seed_sha256"] == commitment  # kept

    # The first 500 were all waiting when the draw began: their call order has nothing to do
    # with their join order, and every tenth of the line had people among the first called.
    numbers = [joined[a]["number"] for a in first]
    sweeps = [called_at[a] for a in first]
    assert abs(spearman(numbers, sweeps)) < 0.2, spearman(numbers, sweeps)
    early_cut = sorted(sweeps)[len(sweeps) // 3]
    for decile in range(10):
        members = [a for a in first if joined[a]["number"] // 50 == decile]
        assert any(called_at[a] <= early_cut for a in members), decile

    # Each is admitted once: the numbers unique, a second ask gives the same session back.
    admitted = await asyncio.gather(*(room.admit(bearers[a], joined[a]["ticket"]) for a in joined))
    assert {status for status, _ in admitted} == {200}, admitted[:3]
    again = await room.admit(bearers["acc-0"], joined["acc-0"]["ticket"])
    assert again[0] == 200
    stats = await room.stats()
    assert stats["admitted_total"] == 600
    assert stats["issued"] == 600
    assert stats["serving"] == 600
    assert len({j["number"] for j in joined.values()}) == 600

    # Closed: the seed is revealed, and it is the one committed to.
    closes = datetime.now(UTC) - timedelta(seconds=1)
    closed = await room.patch(closes_at=closes.isoformat().replace("+00:00", "Z"))
    assert closed["phase"] == "closed"
    assert closed["random_seed"] is not None
    assert hashlib.sha256(closed["random_seed"].encode()).hexdigest() == commitment


async def _seeded(room: Room) -> Json | None:
    stats = await room.stats()
    return stats if stats.get("random_seed_sha256") else None


# --- passthrough and reject ----------------------------------------------------------------


async def test_passthrough_lets_everyone_straight_in(room: Room, bearers: dict[str, str]) -> None:
    crowd = dict(list(bearers.items())[:500])
    # A crawl and ten places: passthrough ignores both (not a pause: that still holds all).
    await room.put(room_spec(mode="passthrough", rate_per_s=0.01, max_active=10, paused=False))
    before = await room.metrics()
    joined = await room.join_all(crowd)
    for j in joined.values():
        assert j["state"] == "ready", j
        assert j["mode"] == "passthrough"
        assert j.get("in_draw") is None
    admitted = await asyncio.gather(*(room.admit(crowd[a], joined[a]["ticket"]) for a in crowd))
    assert {status for status, _ in admitted} == {200}, admitted[:3]
    stats = await room.stats()
    assert stats["admitted_total"] == 500
    assert stats["active"] == 500
    assert stats["issued"] == 500
    after = await room.metrics()
    joins = "guichet_room_joins_total"
    assert (
        metric_value(after, joins, room=ROOM, phase="open")
        - metric_value(before, joins, room=ROOM, phase="open")
        == 500
    )
    served = await until(lambda: _serving(room, 500), "every number called")
    assert served["serving"] == 500


async def _serving(room: Room, at_least: int) -> Json | None:
    stats = await room.stats()
    return stats if stats["serving"] >= at_least else None


async def test_reject_lets_no_one_in_and_keeps_those_waiting(
    room: Room, bearers: dict[str, str]
) -> None:
    accounts = list(bearers)
    await room.put(room_spec(mode="fifo"))  # paused: two wait, one called below
    waiting = await room.join_all({a: bearers[a] for a in accounts[:2]})
    await room.patch(mode="reject", paused=False)
    crowd = {a: bearers[a] for a in accounts[100:600]}
    replies = await asyncio.gather(*(room.join(b) for b in crowd.values()))
    for status, body in replies:
        assert_problem(status, body, 409, "room-rejecting")
        assert body["detail"] == "the room is not letting anyone in right now"
    stats = await room.stats()
    assert stats["issued"] == 2
    assert stats["spec"]["mode"] == "reject"
    for account, j in waiting.items():  # kept their tickets, see the mode, are not called
        s = await room.status(j["ticket"])
        assert s["state"] == "waiting", s
        assert s["mode"] == "reject", s
        assert s["number"] == j["number"]
        status, body = await room.admit(bearers[account], j["ticket"])
        assert_problem(status, body, 409, "room-rejecting")
        again, _ = await room.join(bearers[account])  # the holder's own ticket comes back
        assert again == 200
    for _ in range(5):  # each admin read runs a tick first (show_room): none may call
        assert (await room.stats())["serving"] == 0


# --- live switch and validation ------------------------------------------------------------


async def test_a_live_switch_applies_at_the_next_tick_and_is_counted(
    room: Room, bearers: dict[str, str]
) -> None:
    crowd = dict(list(bearers.items())[:50])
    await room.put(room_spec(mode="fifo", paused=False, rate_per_s=0.01))
    joined = await room.join_all(crowd)
    before = await room.metrics()
    stats = await room.patch(mode="passthrough")
    assert stats["spec"]["mode"] == "passthrough"

    async def all_ready() -> bool | None:
        got = await room.statuses(joined)
        return True if all(s["state"] == "ready" for s in got.values()) else None

    await until(all_ready, "everyone called after the switch", within_s=5)
    await room.patch(mode="passthrough")  # no change: not a switch

    async def exported() -> str | None:  # the gauges follow at the next pacer round
        text = await room.metrics()
        return (
            text if metric_value(text, "guichet_room_mode", room=ROOM, mode="passthrough") else None
        )

    after = await until(exported, "the mode gauge of the new mode")
    switches = "guichet_room_mode_switches_total"
    assert (
        metric_value(after, switches, room=ROOM, mode="passthrough")
        - metric_value(before, switches, room=ROOM, mode="passthrough")
        == 1
    )
    assert metric_value(after, "guichet_room_mode", room=ROOM, mode="passthrough") == 1
    assert metric_value(after, "guichet_room_mode", room=ROOM, mode="fifo") == 0
    # A replacing PUT with another mode is a switch too (counted once, whichever worker).
    await room.put(room_spec(mode="reject", paused=False))
    last = await room.metrics()
    assert (
        metric_value(last, switches, room=ROOM, mode="reject")
        - metric_value(after, switches, room=ROOM, mode="reject")
        == 1
    )


@pytest.mark.parametrize("value", ["lottery", 3, "", "FIFO", ["fifo"]])
async def test_a_bad_mode_is_refused_naming_the_field(room: Room, value: object) -> None:
    await room.put(room_spec(mode="fifo"))
    async with room.session.patch(
        room.url(f"/v1/admin/rooms/{ROOM}"), json={"mode": value}, headers=room.admin
    ) as resp:
        assert resp.status == 422, await resp.text()
        assert resp.content_type == PROBLEM_CONTENT_TYPE
        body = json.loads(await resp.text())
    assert "mode" in json.dumps(body["errors"]), body
    assert (await room.stats())["spec"]["mode"] == "fifo"  # nothing changed


async def test_the_cli_switches_the_mode_live(
    room: Room, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await room.put(room_spec(mode="fifo"))
    config = str(await asyncio.to_thread(write_config, tmp_path, settings))
    url = room.url("/")
    code, out, err = await run_cli(
        capsys, "--config", config, "room", "set", ROOM, "--url", url, "--mode", "random"
    )
    assert code == 0, err
    assert json.loads(out)["spec"]["mode"] == "random"
    stats = await until(lambda: _seeded(room), "the draw's seed after the switch")
    assert stats["spec"]["mode"] == "random"
    with pytest.raises(SystemExit):  # argparse refuses a mode it does not know
        await run_cli(capsys, "--config", config, "room", "set", ROOM, "--mode", "lottery")
    assert "--mode" in capsys.readouterr().err
