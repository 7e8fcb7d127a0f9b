"""The programme's calendar rules: withdrawal until the eve (Paris time), reclaim days, minors."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from guichet.programme import model

DAYS = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))


def test_eve_deadline_follows_paris_summer_and_winter_time() -> None:
    # 2024-07-27 (summer, UTC+2): the eve ends at 2024-07-26T22:00Z.
    assert model.withdrawal_deadline(date(2024, 7, 27)) == datetime(
        2024, 7, 26, 21, 59, 59, 999999, UTC
    )
    # 2024-01-15 (winter, UTC+1): at 2024-01-14T23:00Z.
    assert model.withdrawal_deadline(date(2024, 1, 15)) == datetime(
        2024, 1, 14, 22, 59, 59, 999999, UTC
    )


@given(DAYS)
def test_deadline_is_the_last_instant_of_the_eve_in_paris(day: date) -> None:
    deadline = model.withdrawal_deadline(day)
    assert deadline.astimezone(model.PARIS).date() == day - timedelta(days=1)
    assert (deadline + timedelta(microseconds=1)).astimezone(model.PARIS).date() == day


def test_seed_reclaim_days_are_paris_midnight() -> None:
    assert model.reclaim_at(model.RECLAIM_ON["olympic"]) == datetime(2024, 4, 30, 22, 0, tzinfo=UTC)
    assert model.reclaim_at(model.RECLAIM_ON["paralympic"]) == datetime(
        2024, 5, 31, 22, 0, tzinfo=UTC
    )


def test_published_split_adds_up_to_the_state_purchase() -> None:
    assert sum(model.PUBLISHED_SPLIT.values()) == model.TOTAL_TICKETS == 401_220


@given(DAYS, DAYS)
def test_minor_until_the_eighteenth_birthday(birth: date, day: date) -> None:
    coming_of_age = model.majority_day(birth)
    assert model.minor_on(birth, day) == (day < coming_of_age)
    assert (coming_of_age.year - birth.year) == 18


def test_leap_day_births_come_of_age_on_the_first_of_march() -> None:
    assert model.majority_day(date(2008, 2, 29)) == date(2026, 3, 1)
    assert model.minor_on(date(2006, 7, 27), date(2024, 7, 26))
    assert not model.minor_on(date(2006, 7, 27), date(2024, 7, 27))
