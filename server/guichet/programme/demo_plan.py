"""The demo's State programme: the 401,220 tickets over the demo catalogue's sessions, and the
four publics' programmes per games with the published split. Pure and deterministic.

The State bought tickets across the Olympic and Paralympic competitions and ceremonies (seed
002, intro); which sessions and categories is not public, so the demo spreads them over every
session of the shipped catalogue in its cheapest category, in proportion to the session's
seats (our design). Each public's published count (``model.PUBLISHED_SPLIT``) is split between
the two games in proportion to the games' share of the pool, then laid over that games'
sessions in order, so that every sum is exact: per session the programmes' allocations add
up to its pool row, per public they add up to the published count.

The catalogue's dates are the real 2024 ones. Run today, every withdrawal would be "too late"
and every reclaim due, so the demo and the benchmark shift the games (``shift_to``): every
session date and both reclaim dates move by the same number of days, keeping the seed's
distances (1 May reclaim, 86 days before the 26 July opening; 1 June for the Paralympics).
The default shift is none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from guichet.programme import model
from guichet.programme.pool import ProgrammeBody
from guichet.shop.demo import shipped


@dataclass(frozen=True)
class PoolRow:
    games: model.Games
    session: str
    date: str  # YYYY-MM-DD
    name: str
    category: str
    quantity: int


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainder; sums exactly)."""
    whole = sum(weights)
    if whole <= 0:
        raise ValueError("weights must add up to more than zero")
    shares = [total * w // whole for w in weights]
    rest = sorted(range(len(weights)), key=lambda i: -((total * weights[i]) % whole))
    for i in rest[: total - sum(shares)]:
        shares[i] += 1
    return shares


#: The Olympic opening ceremony (26 July 2024), the demo catalogue's first Olympic session.
OLYMPIC_OPENING = date(2024, 7, 26)
NO_SHIFT = timedelta(0)
#: The eligibility criteria each public's operator attests (our design: the seed names the
#: publics, not their criteria).
CRITERIA: dict[model.Public, list[str]] = {
    "youth": ["age-under-26", "referred-by-school-or-club"],
    "volunteers": ["sports-club-volunteer"],
    "disability": ["disability-card-or-carer"],
    "agents": ["public-agent-category-b-or-c"],
}
#: How long after the (shifted) 2024 season the beneficiaries' data is kept (our design).
RETENTION_UNTIL = date(2024, 12, 31)


def shift_to(opening: date) -> timedelta:
    """The shift that puts the Olympic opening on ``opening``."""
    return opening - OLYMPIC_OPENING


def reclaim_on(games: model.Games, shift: timedelta = NO_SHIFT) -> date:
    """The games' reclaim date (seed §2), shifted with the sessions."""
    return model.RECLAIM_ON[games] + shift


def operator_of(public: model.Public) -> str:
    return f"op-{public}"


def programme_body(
    public: model.Public, games: model.Games, shift: timedelta = NO_SHIFT,
    retention_until: date | None = None,
) -> ProgrammeBody:  # fmt: skip
    """The demo programme of ``public`` in ``games``: its criteria, operator and dates."""
    return ProgrammeBody(
        public=public, games=games, operator=operator_of(public),
        retention_until=retention_until or RETENTION_UNTIL + shift,
        criteria=list(CRITERIA[public]), reclaim_on=reclaim_on(games, shift),
    )  # fmt: skip


def pool_rows(total: int = model.TOTAL_TICKETS, shift: timedelta = NO_SHIFT) -> list[PoolRow]:
    """The demo pool: ``total`` tickets over every session of the demo catalogue, its dates
    moved by ``shift``."""
    sessions = shipped().sessions
    seats = [sum(c.seats for c in s.categories) for s in sessions]
    counts = apportion(total, seats)
    return [
        PoolRow(
            games=s.games,
            session=s.id,
            date=(s.starts_at.date() + shift).isoformat(),
            name=f"{s.sport} {s.id}",
            category=min(s.categories, key=lambda c: c.price_eur).id,
            quantity=n,
        )
        for s, n in zip(sessions, counts, strict=True)
        if n > 0
    ]


def programme_id(public: model.Public, games: model.Games) -> str:
    return f"{public}-{games}"


def allocations(rows: Sequence[PoolRow]) -> dict[str, list[tuple[str, str, int]]]:
    """Programme id -> its (session, category, quantity) allocations: every row given out
    (for a smaller pool, as the benchmark's tests use, the split scaled to its size)."""
    per_games = {g: sum(r.quantity for r in rows if r.games == g) for g in model.GAMES}
    publics = list(model.PUBLICS)
    # the published split itself for the 401,220-ticket pool, in proportion for another size
    split = apportion(sum(per_games.values()), [model.PUBLISHED_SPLIT[p] for p in publics])
    olympic = apportion(per_games["olympic"], split)
    by_games = {"olympic": olympic,
                "paralympic": [s - o for s, o in zip(split, olympic, strict=True)]}  # fmt: skip
    out: dict[str, list[tuple[str, str, int]]] = {}
    for games in model.GAMES:
        wanted = by_games[games]
        games_rows = [r for r in rows if r.games == games]
        if sum(wanted) != sum(r.quantity for r in games_rows) or min(wanted) < 0:
            raise ValueError(f"the split does not fit the {games} pool")
        index, left = 0, wanted[0]
        for r in games_rows:  # lay the publics over the sessions in order
            quantity = r.quantity
            while quantity:
                while left == 0:
                    index += 1
                    left = wanted[index]
                take = min(quantity, left)
                key = programme_id(publics[index], games)
                out.setdefault(key, []).append((r.session, r.category, take))
                quantity -= take
                left -= take
    return out
