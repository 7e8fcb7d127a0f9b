"""The random-mode draw replayed in Python (room/lottery.py): a permutation, final below the
serving counter, reproducible from the seed and the log. tick.lua agrees: see
tests/integration/test_room_modes.py."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from guichet.room import lottery

seeds = st.text(alphabet="0123456789abcdef", min_size=1, max_size=40)
# Each step: new arrivals, then how many of those waiting are called in one batch.
steps = st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=25)


def run(seed: str, plan: list[tuple[int, int]]) -> tuple[lottery.Draw, list[str], int]:
    draw, log, issued = lottery.Draw(seed), [], 0
    for arrivals, calls in plan:
        issued += arrivals
        count = min(calls, issued - draw.serving)
        if count > 0:
            entry = f"{draw.serving}:{count}:{issued}"
            log.append(entry)
            draw.apply(*lottery.parse_batch(entry))
    return draw, log, issued


@settings(max_examples=300, deadline=None)
@given(seeds, steps)
def test_the_draw_is_a_permutation_final_below_serving_and_replayable(
    seed: str, plan: list[tuple[int, int]]
) -> None:
    draw, log, issued = run(seed, plan)
    numbers = [draw.number_at(p) for p in range(issued)]
    assert sorted(numbers) == list(range(issued))  # everyone holds exactly one position
    for p, n in enumerate(numbers):
        assert draw.position(n) == p
    # Anyone with the seed and the log gets the same draw.
    again = lottery.Draw(seed)
    for entry in log:
        again.apply(*lottery.parse_batch(entry))
    assert [again.number_at(p) for p in range(issued)] == numbers
    # Positions below serving never move again, whatever comes after.
    called = numbers[: draw.serving]
    if issued > draw.serving:
        draw.apply(draw.serving, issued - draw.serving, issued)
    assert [draw.number_at(p) for p in range(len(called))] == called


@given(seeds, st.integers(0, 10**12), st.integers(1, 10**6))
def test_a_pick_is_among_those_waiting_and_is_the_documented_hash(
    seed: str, serving: int, waiting: int
) -> None:
    j = lottery.pick(seed, serving, serving + waiting)
    assert serving <= j < serving + waiting
    h = int(hashlib.sha1(f"{seed}:{serving}".encode(), usedforsecurity=False).hexdigest()[:13], 16)
    assert j == serving + h % waiting


def test_the_first_pick_is_uniform_over_those_waiting() -> None:
    counts = [0] * 10
    for s in range(20_000):
        counts[lottery.pick("seed", s, s + 10) - s] += 1
    assert all(1_800 < c < 2_200 for c in counts), counts  # 2,000 each, ±200 is about 5 sigma
