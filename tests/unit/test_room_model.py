"""Pure waiting-room rules: the pre-queue shuffle, pacing maths, ETA, poll hints, states."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import get_args

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guichet.refusals import code_of
from guichet.room import model
from guichet.room.model import Counters, eta_s, metered_rate, poll_after_ms, queue_order
from guichet.room.outcomes import (
    REFUSALS,
    AdmitCode,
    ConfigureCode,
    HeartbeatCode,
    JoinCode,
    LeaveCode,
    Refused,
    tick_of,
)

seeds = st.binary(min_size=32, max_size=32)


@given(seeds, st.integers(min_value=0, max_value=2_000))
def test_shuffle_is_a_permutation(seed: bytes, count: int) -> None:
    order = queue_order(seed, count, "shuffle-then-fifo")
    assert sorted(order.tolist()) == list(range(count))


@given(seeds, st.integers(min_value=1, max_value=500))
def test_shuffle_is_reproducible_from_the_seed(seed: bytes, count: int) -> None:
    assert queue_order(seed, count, "shuffle-then-fifo").tolist() == (
        queue_order(seed, count, "shuffle-then-fifo").tolist()
    )


def test_another_seed_gives_another_order() -> None:
    a = queue_order(b"\x01" * 32, 1000, "shuffle-then-fifo")
    b = queue_order(b"\x02" * 32, 1000, "shuffle-then-fifo")
    assert a.tolist() != b.tolist()


def test_fifo_mode_keeps_join_order() -> None:
    assert queue_order(b"\x00" * 32, 5, "fifo").tolist() == [0, 1, 2, 3, 4]


def test_shuffle_is_uniform() -> None:
    """Chi-square: over many seeds, every pre-queue person lands on every number equally often.

    For n = 8 people and 16,000 seeds, each of the 64 (person, number) cells expects 250 hits.
    The statistic summed over the 8x8 table has (n-1)^2 = 49 degrees of freedom; 90.6 is the
    0.9999 quantile, so a fair shuffle fails this test about once in 10,000 runs. A biased one
    (e.g. the classic "swap with any index" bug, or mode fifo) fails it every time.
    """
    n, trials = 8, 16_000
    counts = np.zeros((n, n), dtype=np.int64)
    for trial in range(trials):
        seed = hashlib.sha256(trial.to_bytes(4, "big")).digest()
        order = queue_order(seed, n, "shuffle-then-fifo")
        counts[np.arange(n), order] += 1
    expected = trials / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 90.6, counts

    # The same statistic on a biased shuffle is far above the bound: the test can fail.
    biased = np.zeros((n, n), dtype=np.int64)
    rng = np.random.default_rng(1)
    for _ in range(trials):
        perm = list(range(n))
        for i in range(n):
            j = int(rng.integers(0, n))  # naive shuffle: not uniform
            perm[i], perm[j] = perm[j], perm[i]
        biased[np.arange(n), perm] += 1
    assert float(((biased - expected) ** 2 / expected).sum()) > 90.6


def test_pairs_are_uniform_too() -> None:
    """Uniform positions alone do not make a uniform permutation (a rotation has them); the
    relative order of two people must be a fair coin as well."""
    trials = 4_000
    first_before_second = 0
    for trial in range(trials):
        seed = hashlib.sha256(b"pair" + trial.to_bytes(4, "big")).digest()
        order = queue_order(seed, 5, "shuffle-then-fifo")
        first_before_second += int(order[0] < order[1])
    # Binomial(4000, 0.5): sd = 31.6; 5 sd either side.
    assert abs(first_before_second - trials / 2) < 160


@given(st.floats(min_value=0.01, max_value=1e5), st.floats(min_value=0, max_value=1))
def test_metered_rate_is_bounded_and_monotonic(rate: float, stock: float) -> None:
    value = metered_rate(rate, stock)
    assert 0 <= value <= rate
    if stock > 0:
        assert value >= rate * 0.05 - 1e-9
        assert metered_rate(rate, min(1.0, stock + 0.01)) >= value
    else:
        assert value == 0


def test_metered_rate_full_until_a_fifth_is_left() -> None:
    assert metered_rate(10, None) == 10
    assert metered_rate(10, 0.5) == 10
    assert metered_rate(10, 0.2) == 10
    assert metered_rate(10, 0.1) == pytest.approx(5)
    assert metered_rate(10, 0.0) == 0


@given(st.integers(min_value=0, max_value=10**7), st.floats(min_value=0.001, max_value=1e5))
def test_eta_is_enough_time_for_the_people_ahead(ahead: int, rate: float) -> None:
    eta = eta_s(ahead, rate)
    assert eta is not None
    assert eta * rate >= ahead - 1e-6
    assert eta == 0 or (eta - 1) * rate < ahead


def test_eta_unknown_without_a_measured_rate() -> None:
    assert eta_s(5, 0.0) is None
    assert eta_s(0, 0.0) == 0


@given(st.integers(min_value=0, max_value=10**7), st.floats(min_value=0.01, max_value=1e4))
def test_poll_hint_is_between_one_and_thirty_seconds_and_grows_with_the_line(
    ahead: int, rate: float
) -> None:
    hint = poll_after_ms(ahead, rate)
    assert 1_000 <= hint <= 30_000
    assert poll_after_ms(ahead + 1000, rate) >= hint


def _counters(**changes: object) -> Counters:
    base = Counters(
        now=1000.0, opens_at=900.0, closes_at=2000.0, opened=True, prequeue=0, issued=100,
        serving=10, floor=3, active=0, admitted_total=0, expired_total=0, rate=1.0,
        effective_rate=1.0, sold_out=False, stock_remaining=None, paused=False, seed=None,
        opened_at=900.0,
    )  # fmt: skip
    return msgspec.structs.replace(base, **changes)


@pytest.mark.parametrize(
    ("number", "changes", "now", "state"),
    [
        (None, {"opened": False}, 800.0, "prequeue"),
        (None, {"opened": False}, 2500.0, "closed"),
        (12, {}, 1000.0, "waiting"),
        (5, {}, 1000.0, "ready"),
        (2, {}, 1000.0, "expired"),
        (12, {"sold_out": True}, 1000.0, "sold_out"),
        (5, {"sold_out": True}, 1000.0, "ready"),  # already called: may still buy
        (12, {}, 2500.0, "closed"),
        (5, {}, 2500.0, "ready"),  # called before closing: still admitted
    ],
)
def test_state_of(number: int | None, changes: dict[str, object], now: float, state: str) -> None:
    assert model.state_of(number, 0, _counters(**changes), now) == state


def test_room_spec_refuses_a_window_backwards_and_naive_times() -> None:
    now = datetime.now(UTC)
    good = {
        "opens_at": now.isoformat(), "closes_at": (now + timedelta(hours=1)).isoformat(),
        "rate_per_s": 5, "max_active": 10, "audience": "shop", "target_url": "https://x.test/",
    }  # fmt: skip
    assert msgspec.convert(good, model.RoomSpec).rate_per_s == 5
    with pytest.raises(msgspec.ValidationError, match="closes_at"):
        msgspec.convert({**good, "closes_at": now.isoformat()}, model.RoomSpec)
    with pytest.raises(msgspec.ValidationError, match="UTC offset"):
        msgspec.convert({**good, "opens_at": "2026-01-01T00:00:00"}, model.RoomSpec)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**good, "rate_per_s": 0}, model.RoomSpec)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({**good, "target_url": "javascript:alert(1)"}, model.RoomSpec)


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_room_ids_are_key_safe(room: str) -> None:
    if model.valid_room_id(room):
        assert all(c.isascii() and (c.isalnum() or c == "-") for c in room)
        assert room == room.lower()


def test_every_refusal_code_has_its_problem() -> None:
    """The room's refusal table covers every refusal code, and every code a script can refuse
    with is in it (the codes each script can answer with success are the rest)."""
    assert set(REFUSALS) == set(get_args(Refused))
    success = {"ok", "again", "created", "updated", "exists", "bad_window"}
    door = {"replayed", "unproven"}  # answered by the proof-of-work door (door.refused)
    for codes in (JoinCode, AdmitCode, LeaveCode, HeartbeatCode, ConfigureCode):
        assert set(get_args(codes)) - success - door <= set(REFUSALS)
    assert door <= set(get_args(JoinCode))


def test_a_code_no_script_lists_is_an_error_not_a_refusal() -> None:
    assert code_of(b"limited_ip", JoinCode, "join") == "limited_ip"
    with pytest.raises(RuntimeError, match=r"join\.lua answered an unknown code"):
        code_of(b"limited", JoinCode, "join")


def test_the_tick_reply_is_decoded_by_name() -> None:
    fields: dict[str, object] = {
        "now": 7, "opens": 1, "closes": 9, "opened_us": 2, "pre": 3, "issued": 5, "serving": 4,
        "floor": 1, "active": 2, "admitted": 3, "expired": 0, "measured_rate": b"1.500000",
        "effective_rate": b"2.000000", "stock": b"", "paused": 0, "seed": b"ab",
        "opened_now": 1, "reaped": 0, "version": b"4",
    }  # fmt: skip
    reply: list[object] = [b"code", b"ok"]
    for name, value in fields.items():
        reply += [name.encode(), value]
    tick = tick_of(reply)
    assert tick is not None
    assert (tick.serving, tick.measured_rate, tick.opened_now, tick.version) == (4, 1.5, True, "4")
    assert tick_of([b"code", b"unknown"]) is None
