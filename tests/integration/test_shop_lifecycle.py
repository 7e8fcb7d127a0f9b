"""The shop's hold lifecycle as a state machine against a real Valkey: hypothesis holds,
confirms, releases and expires holds of two accounts in any order, and after every step the
stock invariant (available + held + sold = loaded, per item) and every account's quotas and
usage counters must agree with a plain model of the holds."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import msgspec
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from guichet.app import SCRIPTS
from guichet.config import RedisConfig, Settings
from guichet.shop import model
from guichet.shop.service import Shop
from guichet.store.client import Store, connect
from guichet.store.keys import SaleKeys

T = TypeVar("T")

ACCOUNTS = ("acc-a", "acc-b")
SPEC = model.SaleSpec(
    phase="singles",
    window_required=False,
    max_tickets=6,
    max_per_session=4,
    max_per_session_limited=2,
)
CATALOGUE = msgspec.convert({"sessions": [
    {"id": sid, "sport": "Judo", "venue": "Champ-de-Mars Arena",
     "starts_at": "2024-07-28T10:00:00Z", "kind": "ceremony" if sid == "CER" else "sport",
     "categories": [{"id": "A", "price_eur": 50, "seats": 3},
                    {"id": "B", "price_eur": 30, "seats": 3}]}
    for sid in ("S1", "CER")
]}, model.Catalogue)  # fmt: skip
LOADED = {model.item_key(s.id, c.id): c.seats for s in CATALOGUE.sessions for c in s.categories}
LIMITED = {s.id for s in CATALOGUE.sessions if s.limited}
MAX_PER_SESSION = {
    s.id: SPEC.max_per_session_limited if s.limited else SPEC.max_per_session
    for s in CATALOGUE.sessions
}

items = st.builds(
    lambda s, c, q: model.Item(session=s, category=c, quantity=q),
    st.sampled_from(["S1", "CER"]),
    st.sampled_from(["A", "B"]),
    st.integers(1, 3),
)
_sales = itertools.count()


@dataclass
class Hold:
    """The model's view of one hold."""

    id: str
    account: str
    wanted: dict[str, int]  # quantity by stock field
    state: str = "held"
    sessions: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = {}
        for f, q in self.wanted.items():
            session = f.partition(":")[0]
            self.sessions[session] = self.sessions.get(session, 0) + q

    @property
    def tickets(self) -> int:
        return sum(self.wanted.values())


class ShopLifecycle(RuleBasedStateMachine):
    """One sale, two accounts; the model is the list of holds and their states."""

    redis: ClassVar[RedisConfig]
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.store: Store = connect(self.redis, scripts=SCRIPTS)
        self.shop = Shop(self.store)
        self.sale = f"life-{time.monotonic_ns()}-{next(_sales)}"
        self.model: list[Hold] = []
        self.keys = itertools.count()
        self.run(self.open())

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(work)

    async def open(self) -> None:
        await self.store.scripts.load_all()
        await self.shop.put(self.sale, SPEC)
        assert (await self.shop.load(self.sale, CATALOGUE))[0] == "ok"

    def teardown(self) -> None:
        self.run(self.store.close())
        self.runner.close()

    # --- the model ---------------------------------------------------------------------------

    def live(self, account: str | None = None) -> list[Hold]:
        """Holds that count against stock and quotas: held or confirmed."""
        return [
            h
            for h in self.model
            if h.state in ("held", "confirmed") and account in (None, h.account)
        ]

    def count(self, state: str) -> dict[str, int]:
        out = dict.fromkeys(LOADED, 0)
        for h in self.model:
            if h.state == state:
                for f, q in h.wanted.items():
                    out[f] += q
        return out

    def expected_hold(self, account: str, request: model.HoldRequest) -> str:
        """The answer the rules give (model.check_hold, then stock), as test_shop_store."""
        mine = self.live(account)
        per_session: dict[str, int] = {}
        for h in mine:
            for s, q in h.sessions.items():
                per_session[s] = per_session.get(s, 0) + q
        usage = model.Usage(sum(h.tickets for h in mine), 0, per_session)
        verdict = model.check_hold(request, SPEC, usage, LIMITED)
        if verdict is not None:
            return verdict.rule
        taken = {f: self.count("held")[f] + self.count("confirmed")[f] for f in LOADED}
        wanted = model.merged(request.lines())
        short = any(LOADED[f] - taken[f] < q for f, q in wanted.items())
        return "stock" if short else "ok"

    # --- rules -------------------------------------------------------------------------------

    @rule(target=holds, account=st.sampled_from(ACCOUNTS), lines=st.lists(items, min_size=1,
          max_size=3))  # fmt: skip
    def hold(self, account: str, lines: list[model.Item]) -> str | MultipleResults[str]:
        request = model.HoldRequest(items=lines)
        expected = self.expected_hold(account, request)
        answer = self.run(
            self.shop.hold(self.sale, "singles", account, f"k{next(self.keys)}", request)
        )
        assert answer.code == expected, (lines, answer)
        if expected != "ok":
            return multiple()  # no hold to act on
        hold_id = answer.hold
        self.model.append(Hold(hold_id, account, model.merged(lines)))
        return hold_id

    def find(self, hold_id: str) -> Hold | None:
        return next((h for h in self.model if h.id == hold_id), None)

    @rule(hold_id=holds, by_owner=st.booleans())
    def confirm(self, hold_id: str, by_owner: bool) -> None:
        h = self.find(hold_id)
        account = h.account if h is not None and by_owner else "acc-stranger"
        code, _record, _fsynced = self.run(
            self.shop.confirm(self.sale, account, hold_id, f"PAY-{hold_id}", 1)
        )
        if h is None or not by_owner:
            assert code == "not_found"
        elif h.state == "held":  # the hold TTL (600 s) has not run out
            assert code == "ok"
            h.state = "confirmed"
        else:
            assert code == ("again" if h.state == "confirmed" else h.state)

    @rule(hold_id=holds, by_owner=st.booleans())
    def release(self, hold_id: str, by_owner: bool) -> None:
        h = self.find(hold_id)
        account = h.account if h is not None and by_owner else "acc-stranger"
        code, _record = self.run(self.shop.release(self.sale, account, hold_id))
        if h is None or not by_owner:
            assert code == "not_found"
        elif h.state == "held":
            assert code == "ok"
            h.state = "released"
        else:
            assert code == h.state

    @rule(hold_id=holds)
    def expire(self, hold_id: str) -> None:
        """The hold's TTL runs out: its entry in the expiry queue moves to the past (only if it
        is still queued: confirm and release take it out), then the service's expire path."""
        h = self.find(hold_id)
        expiries = SaleKeys(self.sale).expiries

        async def force() -> int:
            await self.store.client.zadd(expiries, {hold_id: 0}, xx=True)
            return await self.shop.expire(self.sale, 100)

        expired = self.run(force())
        if h is not None and h.state == "held":
            assert expired == 1
            h.state = "expired"
        else:
            assert expired == 0

    @rule()
    def nothing_is_due(self) -> None:
        """Time passes, less than a hold TTL: the expire path returns nothing."""
        assert self.run(self.shop.expire(self.sale, 100)) == 0

    # --- after every step --------------------------------------------------------------------

    @invariant()
    def stock_adds_up(self) -> None:
        levels = self.run(self.shop.levels(self.sale))
        held, sold = self.count("held"), self.count("confirmed")
        for f, loaded in LOADED.items():
            available = levels.stock.get(f, 0)
            assert levels.loaded.get(f) == loaded, (f, levels)
            assert min(available, levels.held.get(f, 0), levels.sold.get(f, 0)) >= 0, (f, levels)
            assert available + levels.held.get(f, 0) + levels.sold.get(f, 0) == loaded, (f, levels)
            assert (levels.held.get(f, 0), levels.sold.get(f, 0)) == (held[f], sold[f]), f

    @invariant()
    def quotas_hold(self) -> None:
        for account in ACCOUNTS:
            mine = self.live(account)
            tickets = sum(h.tickets for h in mine)
            held = sum(h.tickets for h in mine if h.state == "held")
            assert self.run(self.shop.usage(self.sale, account)) == (tickets, held, 0)
            assert tickets <= SPEC.max_tickets
            for session, most in MAX_PER_SESSION.items():
                assert sum(h.sessions.get(session, 0) for h in mine) <= most, (account, session)


def test_the_hold_lifecycle_keeps_stock_and_quotas(settings: Settings) -> None:
    machine = type("Machine", (ShopLifecycle,), {"redis": settings.redis})
    run_state_machine_as_test(
        machine,
        settings=hypothesis_settings(max_examples=25, stateful_step_count=20, deadline=None),
    )
