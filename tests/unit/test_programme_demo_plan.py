"""The demo's State programme adds up: 401,220 tickets, the published split, every row given."""

from __future__ import annotations

from collections import Counter

from hypothesis import assume, given
from hypothesis import strategies as st

from guichet.programme import demo_plan, model


@given(st.integers(0, 10**7), st.lists(st.integers(0, 1000), min_size=1, max_size=50))
def test_apportion_sums_exactly_and_stays_near_the_proportion(
    total: int, weights: list[int]
) -> None:
    assume(sum(weights) > 0)
    shares = demo_plan.apportion(total, weights)
    assert sum(shares) == total
    for share, weight in zip(shares, weights, strict=True):
        assert abs(share - total * weight / sum(weights)) < 1


def test_the_demo_pool_is_the_state_purchase_with_the_published_split() -> None:
    rows = demo_plan.pool_rows()
    assert sum(r.quantity for r in rows) == model.TOTAL_TICKETS
    assert {r.games for r in rows} == {"olympic", "paralympic"}
    plan = demo_plan.allocations(rows)
    per_public: Counter[str] = Counter()
    per_item: Counter[tuple[str, str]] = Counter()
    for programme, items in plan.items():
        public, _, games = programme.partition("-")
        per_public[public] += sum(q for _, _, q in items)
        per_item.update({(s, c): q for s, c, q in items})
        assert all(games == next(r.games for r in rows if r.session == s) for s, _, _ in items)
    assert dict(per_public) == model.PUBLISHED_SPLIT
    assert per_item == Counter({(r.session, r.category): r.quantity for r in rows})
    assert len(plan) == 8  # four publics x two games
