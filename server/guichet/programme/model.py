"""The programme's shared vocabulary and calendar: pure, no I/O.

Rules and where they come from (seed 002, "Principes et bonnes pratiques … Tous aux Jeux"):

- four publics: "la jeunesse …, les bénévoles du mouvement sportif, les personnes en situation
  de handicap et leurs aidants et les agents publics des catégories B et C" (seed §intro); the
  split 258,800 / 100,100 / 17,400 / 24,920 of the 401,220 tickets is the published one
  (public Paris 2024 fact, not in the seed);
- reclaim: "les billets qui n'auront pas été affectés au 1er mai 2024 pour les billets
  olympiques et au 1er juin 2024 pour les billets paralympiques pourront être récupérés par la
  DIJOP" (seed §2) — the default reclaim date of a programme of that games;
- withdrawal "jusqu'à la veille de la compétition" (seed §2): until 23:59:59 Europe/Paris the
  day before the session (our reading of "la veille");
- a minor is a person under 18 on the session's date (French civil majority; CNIL
  recommendation 2 asks the legal guardians' consent for minors).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from msgspec import Meta

from guichet import wire

PARIS = ZoneInfo("Europe/Paris")

Games = Literal["olympic", "paralympic"]
GAMES: tuple[Games, ...] = ("olympic", "paralympic")
Public = Literal["youth", "volunteers", "disability", "agents"]
PUBLICS: tuple[Public, ...] = ("youth", "volunteers", "disability", "agents")
#: The published split of the 401,220 State tickets (public Paris 2024 fact).
PUBLISHED_SPLIT: dict[Public, int] = {
    "youth": 258_800,
    "volunteers": 100_100,
    "disability": 17_400,
    "agents": 24_920,
}
TOTAL_TICKETS = 401_220

#: Default reclaim dates (seed §2), 00:00 Europe/Paris on that day.
RECLAIM_ON: dict[Games, date] = {"olympic": date(2024, 5, 1), "paralympic": date(2024, 6, 1)}
MAJORITY_YEARS = 18

ProgrammeId = wire.Slug
SessionId = Annotated[
    str, Meta(pattern=wire.whole(r"[A-Z0-9][A-Z0-9-]{0,31}"), description="session id")
]
CategoryId = Annotated[
    str, Meta(pattern=wire.whole(r"[A-Z0-9][A-Z0-9-]{0,7}"), description="category id")
]


def item(session: str, category: str) -> str:
    """The field naming one session x category in the programme's count hashes."""
    return f"{session}:{category}"


def paris_midnight(day: date) -> datetime:
    """00:00 Europe/Paris on ``day``, in UTC."""
    return datetime.combine(day, time(0, 0), PARIS).astimezone(UTC)


def reclaim_at(day: date) -> datetime:
    """When a programme whose reclaim date is ``day`` can be reclaimed (00:00 Paris, UTC)."""
    return paris_midnight(day)


def withdrawal_deadline(session_day: date) -> datetime:
    """The last instant a beneficiary may withdraw: the eve of the session, 23:59:59.999999
    Europe/Paris (in UTC). A withdrawal at or after the session day's 00:00 Paris is refused."""
    return paris_midnight(session_day) - timedelta(microseconds=1)


def majority_day(birth: date) -> date:
    """The 18th birthday (29 February births come of age on 1 March in a common year)."""
    try:
        return birth.replace(year=birth.year + MAJORITY_YEARS)
    except ValueError:
        return date(birth.year + MAJORITY_YEARS, 3, 1)


def minor_on(birth: date, day: date) -> bool:
    """Is a person born on ``birth`` under 18 on ``day``?"""
    return day < majority_day(birth)
