"""The demo catalogue: 767 sessions shaped like Paris 2024 (Olympic 26 July to 11 August,
Paralympic 28 August to 8 September), made deterministically by :func:`catalogue` and shipped
as ``demo_catalogue.json`` (``python -m guichet.shop.demo`` writes it again). Its four
ceremonies have ``kind`` ceremony (they do not count towards a pack's three sport sessions);
a sale loads the sessions of its games (:func:`shipped` with ``games``).

Sports, venues and session counts follow the real schedule's shape, not its exact rows;
capacities are scaled down a hundredfold so that a demo sells out in minutes.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import msgspec

from guichet.shop.model import Catalogue, Category, Games, SessionSpec

FILE = "demo_catalogue.json"

#: (code, sport, venue, sessions, seats per session, games, base price €)
SPORTS: tuple[tuple[str, str, str, int, int, str, int], ...] = (
    ("ATH", "Athletics", "Stade de France", 46, 690, "olympic", 85),
    ("SWM", "Swimming", "Paris La Défense Arena", 18, 150, "olympic", 95),
    ("GAR", "Artistic Gymnastics", "Bercy Arena", 14, 150, "olympic", 90),
    ("BKB", "Basketball", "Pierre Mauroy Stadium", 36, 270, "olympic", 75),
    ("FBL", "Football", "Parc des Princes", 50, 450, "olympic", 35),
    ("HBL", "Handball", "South Paris Arena 6", 38, 60, "olympic", 45),
    ("VVO", "Volleyball", "South Paris Arena 1", 34, 60, "olympic", 45),
    ("BVO", "Beach Volleyball", "Eiffel Tower Stadium", 34, 120, "olympic", 50),
    ("TEN", "Tennis", "Roland-Garros", 30, 150, "olympic", 70),
    ("JUD", "Judo", "Champ-de-Mars Arena", 16, 80, "olympic", 55),
    ("FEN", "Fencing", "Grand Palais", 18, 80, "olympic", 60),
    ("CRD", "Cycling Road", "Trocadéro", 4, 400, "olympic", 24),
    ("CTR", "Cycling Track", "National Velodrome", 12, 50, "olympic", 65),
    ("ROW", "Rowing", "Vaires-sur-Marne Nautical Stadium", 16, 120, "olympic", 30),
    ("SRF", "Surfing", "Teahupo'o", 6, 10, "olympic", 24),
    ("SKB", "Skateboarding", "La Concorde", 8, 100, "olympic", 40),
    ("BOX", "Boxing", "Roland-Garros", 20, 100, "olympic", 50),
    ("HOC", "Hockey", "Yves-du-Manoir Stadium", 22, 150, "olympic", 30),
    ("EQU", "Equestrian", "Château de Versailles", 16, 100, "olympic", 60),
    ("WPO", "Water Polo", "Paris La Défense Arena", 28, 150, "olympic", 45),
    ("TTE", "Table Tennis", "South Paris Arena 4", 24, 60, "olympic", 40),
    ("ARC", "Archery", "Les Invalides", 10, 80, "olympic", 35),
    ("WLF", "Weightlifting", "South Paris Arena 6", 12, 60, "olympic", 45),
    ("BDM", "Badminton", "Porte de La Chapelle Arena", 22, 70, "olympic", 45),
    ("RUG", "Rugby Sevens", "Stade de France", 6, 690, "olympic", 50),
    ("PATH", "Para Athletics", "Stade de France", 20, 690, "paralympic", 25),
    ("PSWM", "Para Swimming", "Paris La Défense Arena", 18, 150, "paralympic", 25),
    ("WBK", "Wheelchair Basketball", "Bercy Arena", 24, 150, "paralympic", 25),
    ("BLF", "Blind Football", "Eiffel Tower Stadium", 12, 120, "paralympic", 15),
    ("WFE", "Wheelchair Fencing", "Grand Palais", 8, 80, "paralympic", 20),
    ("PJU", "Para Judo", "Champ-de-Mars Arena", 6, 80, "paralympic", 20),
    ("GBL", "Goalball", "South Paris Arena 6", 24, 60, "paralympic", 15),
    ("PCT", "Para Cycling Track", "National Velodrome", 8, 50, "paralympic", 20),
    ("WRU", "Wheelchair Rugby", "Champ-de-Mars Arena", 14, 80, "paralympic", 20),
    ("BOC", "Boccia", "South Paris Arena 1", 12, 60, "paralympic", 15),
    ("SVO", "Sitting Volleyball", "North Paris Arena", 12, 60, "paralympic", 15),
    ("PTT", "Para Table Tennis", "South Paris Arena 4", 16, 60, "paralympic", 15),
    ("PBD", "Para Badminton", "Porte de La Chapelle Arena", 10, 70, "paralympic", 15),
    ("WTE", "Wheelchair Tennis", "Roland-Garros", 10, 150, "paralympic", 20),
    ("PPW", "Para Powerlifting", "South Paris Arena 6", 10, 60, "paralympic", 15),
    ("PARC", "Para Archery", "Les Invalides", 8, 80, "paralympic", 15),
    ("PTK", "Para Taekwondo", "Grand Palais", 6, 80, "paralympic", 15),
    ("PROW", "Para Rowing", "Vaires-sur-Marne Nautical Stadium", 2, 120, "paralympic", 15),
    ("PCAN", "Para Canoe", "Vaires-sur-Marne Nautical Stadium", 3, 120, "paralympic", 15),
)
CEREMONIES = (
    ("CER-OG-OPEN", "Opening Ceremony", "La Seine", datetime(2024, 7, 26, 19, 30), 3000, 90),
    ("CER-OG-CLOSE", "Closing Ceremony", "Stade de France", datetime(2024, 8, 11, 21), 690, 90),
    ("CER-PG-OPEN", "Paralympic Opening Ceremony", "La Concorde", datetime(2024, 8, 28, 20), 650,
     60),
    ("CER-PG-CLOSE", "Paralympic Closing Ceremony", "Stade de France", datetime(2024, 9, 8, 20),
     690, 60),
)  # fmt: skip
OLYMPIC_DAYS = (datetime(2024, 7, 27), 16)  # first competition day, days
PARALYMPIC_DAYS = (datetime(2024, 8, 29), 11)
HOURS = (10, 14, 17, 20)
SHARES = (("A", 0.15, 2.5), ("B", 0.25, 1.6), ("C", 0.35, 1.0), ("D", 0.25, 0.5))


def _categories(seats: int, price: int) -> list[Category]:
    out = []
    for cid, share, factor in SHARES:
        out.append(
            Category(id=cid, price_eur=int(price * factor), seats=max(1, int(seats * share)))
        )
    return out


def catalogue() -> Catalogue:
    """The demo catalogue (always the same)."""
    sessions = []
    for sid, sport, venue, at, seats, price in CEREMONIES:
        sessions.append(SessionSpec(
            id=sid, sport=sport, venue=venue, starts_at=at.replace(tzinfo=UTC),
            games="paralympic" if "-PG-" in sid else "olympic", kind="ceremony",
            categories=_categories(seats, price * 4),
        ))  # fmt: skip
    for code, sport, venue, count, seats, games, price in SPORTS:
        first, days = OLYMPIC_DAYS if games == "olympic" else PARALYMPIC_DAYS
        for n in range(count):
            day = first + timedelta(days=(n * days) // count)
            final = n >= count - max(1, count // 8)  # the last sessions: medal sessions
            sessions.append(SessionSpec(
                id=f"{code}-{n + 1:02d}", sport=sport, venue=venue,
                starts_at=(day + timedelta(hours=HOURS[n % len(HOURS)])).replace(tzinfo=UTC),
                games=games,  # type: ignore[arg-type]
                high_demand=final and code in ("ATH", "SWM", "GAR", "BKB", "TEN", "PATH"),
                categories=_categories(seats, price * (2 if final else 1)),
            ))  # fmt: skip
    return Catalogue(sessions=sessions)


def shipped(games: Games | None = None) -> Catalogue:
    """The catalogue file that ships with the package (with ``games``: its sessions of those
    games only, as one sale sells them)."""
    raw = resources.files("guichet.shop").joinpath(FILE).read_bytes()
    whole = msgspec.json.decode(raw, type=Catalogue)
    if games is None:
        return whole
    return Catalogue(sessions=[s for s in whole.sessions if s.games == games])


def main() -> int:
    target = Path(__file__).with_name(FILE)
    data = msgspec.json.format(msgspec.json.encode(catalogue()), indent=1)
    target.write_bytes(data + b"\n")
    print(f"{target}: {len(catalogue().sessions)} sessions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
