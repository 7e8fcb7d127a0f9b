"""The shop's scripts against a real Valkey: the hold script agrees with the pure rules,
catalogue files load all or nothing, the audit catches a breach, and a confirmed purchase
survives kill -9 of the server."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guichet import cli, opscli
from guichet.app import SCRIPTS
from guichet.config import Settings
from guichet.embedded import EmbeddedValkey
from guichet.shop import catalogue, model, refusals
from guichet.shop.service import Shop, account_tag
from guichet.store.keys import SaleKeys
from tests.conftest import make_settings, settings_file

T = TypeVar("T")
CATALOGUE = msgspec.convert({"sessions": [
    {"id": sid, "sport": "Judo", "venue": "Champ-de-Mars Arena",
     "starts_at": "2024-07-28T10:00:00Z", "kind": "ceremony" if sid == "CER" else "sport",
     "categories": [{"id": "A", "price_eur": 50, "seats": 8},
                    {"id": "B", "price_eur": 30, "seats": 8}]}
    for sid in ("S1", "S2", "S3", "CER")
]}, model.Catalogue)  # fmt: skip
KINDS = {s.id: s.kind for s in CATALOGUE.sessions}


def with_shop(settings: Settings, work: Callable[[Shop], Awaitable[T]]) -> T:
    return opscli.with_store(settings, SCRIPTS, lambda store: work(Shop(store)))


async def new_sale(shop: Shop, sale: str, spec: model.SaleSpec) -> None:
    await shop.put(sale, spec)
    assert (await shop.load(sale, CATALOGUE))[0] == "ok"


requests = st.lists(
    st.lists(st.builds(lambda s, c, q: model.Item(session=s, category=c, quantity=q),
                       st.sampled_from(["S1", "S2", "CER"]), st.sampled_from(["A", "B"]),
                       st.integers(1, 5)), min_size=1, max_size=4),
    min_size=1, max_size=12,
)  # fmt: skip


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests)
def test_the_hold_script_decides_as_the_pure_rules(
    settings: Settings, holds: list[list[model.Item]]
) -> None:
    """Singles phase, one account, no window needed: each hold is accepted or refused for the
    same rule by hold.lua and by ``model.check_hold`` (plus the stock check)."""
    spec = model.SaleSpec(phase="singles", window_required=False, max_tickets=12)
    sale = f"prop-{time.monotonic_ns()}"

    async def work(shop: Shop) -> None:
        await new_sale(shop, sale, spec)
        stock = {model.item_key(s.id, c.id): c.seats for s in CATALOGUE.sessions
                 for c in s.categories}  # fmt: skip
        usage: dict[str, int] = {}
        tickets = 0
        for n, lines in enumerate(holds):
            request = model.HoldRequest(items=lines)
            verdict = model.check_hold(request, spec, model.Usage(tickets, 0, usage), {"CER"})
            wanted = model.merged(lines)
            expected = verdict.rule if verdict else next(
                ("stock" for f, q in wanted.items() if stock[f] < q), "ok")  # fmt: skip
            answer = await shop.hold(sale, "singles", "acc", f"k{n}", request)
            assert answer.code == expected, (lines, answer)
            if expected == "ok":
                for f, q in wanted.items():
                    stock[f] -= q
                    usage[f.partition(":")[0]] = usage.get(f.partition(":")[0], 0) + q
                tickets += sum(wanted.values())
        assert await shop.usage(sale, "acc") == (tickets, tickets, 0)

    with_shop(settings, work)


pack_requests = st.lists(
    st.lists(st.lists(st.builds(lambda s, c, q: model.Item(session=s, category=c, quantity=q),
                                st.sampled_from(["S1", "S2", "S3", "CER"]),
                                st.sampled_from(["A", "B"]), st.integers(1, 4)),
                      min_size=1, max_size=5), min_size=1, max_size=2),
    min_size=1, max_size=8,
)  # fmt: skip


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pack_requests)
def test_the_hold_script_decides_packs_as_the_pure_rules(
    settings: Settings, holds: list[list[list[model.Item]]]
) -> None:
    """Packs phase, one account: a request the pure rules refuse by composition (3 tickets in
    3 sport sessions) never reaches the script; the others are accepted or refused for the
    same rule by hold.lua and ``model.check_hold`` (packs, tickets, 4 per session here)."""
    spec = model.SaleSpec(window_required=False, max_tickets=14, max_packs=3,
                          pack_max_per_session=4)  # fmt: skip
    sale = f"prop-{time.monotonic_ns()}"

    async def work(shop: Shop) -> None:
        await new_sale(shop, sale, spec)
        stock = {model.item_key(s.id, c.id): c.seats for s in CATALOGUE.sessions
                 for c in s.categories}  # fmt: skip
        usage: dict[str, int] = {}
        tickets = packs = 0
        for n, request_packs in enumerate(holds):
            request = model.HoldRequest(packs=[model.Pack(items=p) for p in request_packs])
            verdict = model.check_hold(request, spec, model.Usage(tickets, packs, usage), set(),
                                       KINDS)  # fmt: skip
            if verdict is not None and verdict.rule == "pack_composition":
                continue  # refused before the script (model.check_shape, in the handler)
            wanted = model.merged(request.lines())
            expected = verdict.rule if verdict else next(
                ("stock" for f, q in wanted.items() if stock[f] < q), "ok")  # fmt: skip
            answer = await shop.hold(sale, "packs", "acc", f"k{n}", request)
            assert answer.code == expected, (request_packs, answer)
            if expected == "ok":
                for f, q in wanted.items():
                    stock[f] -= q
                    usage[f.partition(":")[0]] = usage.get(f.partition(":")[0], 0) + q
                tickets += sum(wanted.values())
                packs += len(request_packs)
        assert await shop.usage(sale, "acc") == (tickets, tickets, packs)

    with_shop(settings, work)


def test_the_hold_script_refuses_outside_the_sale_period(settings: Settings) -> None:
    """The purchase period is decided in hold.lua on Redis TIME (the seed: 15 Feb - 15 Mar)."""
    now = datetime.now(UTC)
    request = model.HoldRequest(items=[model.Item(session="S1", category="A", quantity=1)])

    def spec(opens: timedelta | None, closes: timedelta | None) -> model.SaleSpec:
        return model.SaleSpec(
            phase="singles", window_required=False,
            purchase_opens_at=None if opens is None else now + opens,
            purchase_closes_at=None if closes is None else now + closes,
        )  # fmt: skip

    async def work(shop: Shop) -> list[Any]:
        out = []
        for n, s in enumerate(
            [
                spec(timedelta(hours=1), None),
                spec(None, timedelta(hours=-1)),
                spec(timedelta(days=-1), timedelta(days=1)),
                spec(None, None),
            ]
        ):
            await new_sale(shop, f"period-{n}", s)
            out.append(await shop.hold(f"period-{n}", "singles", "acc", "k", request))
        return out

    before, after, inside, unbounded = with_shop(settings, work)
    assert (before.code, after.code, inside.code, unbounded.code) == ("period", "period", "ok",
                                                                      "ok")  # fmt: skip
    assert before.opens_us == int((now + timedelta(hours=1)).timestamp() * 1_000_000)
    assert before.closes_us is None
    assert after.opens_us is None
    assert after.closes_us == int((now - timedelta(hours=1)).timestamp() * 1_000_000)
    problem = refusals.problem("period", "period-0", before)
    assert (problem.status, problem.slug) == (403, "outside-sale-period")
    assert problem.context is not None
    assert problem.context["period"]["closes_at"] is None


def test_a_wave_must_fall_inside_the_sale_period(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """release-wave refuses windows outside the sale's purchase period, naming it."""
    from tests.integration.test_draw_run import committed_and_closed, do_run

    committed_and_closed(settings, 20)
    do_run(settings)
    config = settings_file(settings, tmp_path / "ops.toml")
    now = datetime.now(UTC)
    closes = (now + timedelta(days=6)).isoformat()
    assert cli.main(["--config", str(config), "shop", "put", "s1", "--opens", now.isoformat(),
                     "--closes", closes]) == 0  # fmt: skip

    def wave(start: datetime) -> int:
        return cli.main(["--config", str(config), "draw", "release-wave", "d1", "--count", "5",
                         "--start", start.isoformat(), "--quiet"])  # fmt: skip

    capsys.readouterr()
    assert wave(now + timedelta(days=5)) == 1  # a 48 h window would end after the period
    err = capsys.readouterr().err
    assert "purchase period" in err
    assert closes in err
    assert wave(now + timedelta(days=3)) == 0
    assert json.loads(capsys.readouterr().out)["assigned"] == 5


def test_a_sale_loads_the_sessions_of_its_games_only(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = settings_file(settings, tmp_path / "ops.toml")

    def run(*argv: str) -> int:
        return cli.main(["--config", str(config), *argv])

    assert run("shop", "put", "para", "--games", "paralympic") == 0
    capsys.readouterr()
    assert run("shop", "load", "para", "--demo") == 0
    assert "225 sessions" in capsys.readouterr().out
    olympic = tmp_path / "olympic.csv"
    olympic.write_text(
        ",".join(catalogue.COLUMNS) + "\n"
        "PATH-01,Para Athletics,SdF,2024-08-30T10:00:00Z,paralympic,sport,false,A,1,10\n"
        "ATH-01,Athletics,SdF,2024-08-01T10:00:00Z,olympic,sport,false,A,1,10\n"
    )
    assert run("shop", "load", "para", str(olympic)) == 1
    assert "session ATH-01 is olympic" in capsys.readouterr().err
    levels = with_shop(settings, lambda s: s.levels("para"))
    assert "ATH-01:A" not in levels.loaded


def test_load_files_all_or_nothing_and_the_audit(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = settings_file(settings, tmp_path / "ops.toml")

    def run(*argv: str) -> int:
        return cli.main(["--config", str(config), *argv])

    assert run("shop", "load", "paris", "--demo") == 1  # no sale yet
    assert run("shop", "put", "paris", "--phase", "packs") == 0
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "session,sport,venue,starts_at,games,kind,high_demand,category,price_eur,seats\n"
        "ATH-01,Athletics,SdF,2024-08-01T10:00:00Z,olympic,sport,false,A,1,10\n"
        "ATH-02,Athletics,SdF,2024-08-02T10:00:00Z,olympic,sport,false,A,1,-5\n"
    )
    capsys.readouterr()
    assert run("shop", "load", "paris", str(bad)) == 1
    assert "line 3" in capsys.readouterr().err
    assert with_shop(settings, lambda s: s.levels("paris")).loaded == {}  # nothing loaded
    assert run("shop", "load", "paris", "--demo") == 0
    assert "542 sessions" in capsys.readouterr().out  # the Olympic ones: the sale's games
    assert run("shop", "audit", "paris") == 0
    levels = with_shop(settings, lambda s: s.levels("paris"))
    assert len({f.partition(":")[0] for f in levels.loaded}) == 542

    async def steal(shop: Shop) -> None:  # a seat vanishes from stock: the audit must see it
        await shop.store.client.hincrby(SaleKeys("paris").stock, "ATH-01:A", -1)

    with_shop(settings, steal)
    capsys.readouterr()
    assert run("shop", "audit", "paris") == 1
    assert "BREACH: ATH-01:A" in capsys.readouterr().out


def test_a_confirmed_purchase_survives_kill_9(tmp_path: Path) -> None:
    """Confirm answers after WAITAOF; SIGKILL right after the answer; the restarted server
    (same data folder, AOF) still has the purchase."""
    with EmbeddedValkey(tmp_path / "valkey") as server:
        settings = make_settings(tmp_path, {"url": server.url})
        spec = model.SaleSpec(window_required=False)
        three = [model.Item(session=s, category="A", quantity=1) for s in ("S1", "S2", "CER")]
        request = model.HoldRequest(packs=[model.Pack(items=three)])

        async def buy(shop: Shop) -> tuple[str, int]:
            await new_sale(shop, "paris", spec)
            answer = await shop.hold("paris", "packs", "buyer", "k1", request)
            code, _, fsynced = await shop.confirm("paris", "buyer", answer.hold, "PAY-9", 2000)
            assert (code, fsynced) == ("ok", 1)
            return answer.hold, fsynced

        hold_id, _ = with_shop(settings, buy)
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGKILL)  # right after the 200
        server.process.wait()
        server.start()  # same port, same data folder: replays the AOF
        levels: Any = with_shop(settings, lambda s: s.levels("paris"))
        assert levels.sold == {"S1:A": 1, "S2:A": 1, "CER:A": 1}
        record = with_shop(settings, lambda s: s.record("paris", hold_id))
        assert record is not None
        assert (record.state, record.payment_reference) == ("confirmed", "PAY-9")
        assert account_tag("buyer") != "buyer"  # the usage hash never holds the raw id


def test_confirm_refuses_without_an_append_only_file(tmp_path: Path) -> None:
    """A store that cannot make purchases durable (appendonly no) gets no confirm through."""
    from redis.exceptions import ResponseError

    with EmbeddedValkey(tmp_path / "valkey", extra_args=["--appendonly", "no"]) as server:
        settings = make_settings(tmp_path, {"url": server.url})
        three = [model.Item(session=s, category="A", quantity=1) for s in ("S1", "S2", "CER")]
        request = model.HoldRequest(packs=[model.Pack(items=three)])

        async def buy(shop: Shop) -> str:
            await new_sale(shop, "paris", model.SaleSpec(window_required=False))
            answer = await shop.hold("paris", "packs", "buyer", "k1", request)
            try:
                await shop.confirm("paris", "buyer", answer.hold, "PAY", 500)
            except ResponseError as exc:
                return str(exc)
            return "confirmed"

        assert "appendonly" in with_shop(settings, buy).lower()
