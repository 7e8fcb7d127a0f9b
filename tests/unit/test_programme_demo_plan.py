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


def test_the_shift_moves_sessions_and_reclaim_dates_together() -> None:
    from datetime import date, timedelta

    real = demo_plan.pool_rows()
    assert min(r.date for r in real if r.games == "olympic") == "2024-07-26"  # no shift: 2024
    opening = date(2026, 9, 1)
    shift = demo_plan.shift_to(opening)
    moved = demo_plan.pool_rows(shift=shift)
    assert [(r.session, r.quantity) for r in moved] == [(r.session, r.quantity) for r in real]
    for a, b in zip(real, moved, strict=True):
        assert date.fromisoformat(b.date) - date.fromisoformat(a.date) == shift
    assert min(r.date for r in moved if r.games == "olympic") == opening.isoformat()
    # the seed's distance: reclaim on 1 May for an opening on 26 July (86 days)
    assert opening - demo_plan.reclaim_on("olympic", shift) == timedelta(days=86)
    assert demo_plan.reclaim_on("paralympic", shift) == date(2024, 6, 1) + shift
    body = demo_plan.programme_body("youth", "olympic", shift)
    assert body.reclaim_on == demo_plan.reclaim_on("olympic", shift)
    assert body.retention_until > body.reclaim_day()
    assert body.criteria == demo_plan.CRITERIA["youth"]
    assert demo_plan.programme_body("agents", "paralympic").reclaim_day() == date(2024, 6, 1)
