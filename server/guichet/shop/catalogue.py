"""Catalogue files (``guichet shop load``): JSON or CSV, checked whole before anything loads.

- **JSON**: ``{"sessions": [...]}``, each session as in the admin API (``model.SessionSpec``).
- **CSV**: a header, then one row per session and price category::

      session,sport,venue,starts_at,games,kind,high_demand,category,price_eur,seats
      ATH-01,Athletics,Stade de France,2024-08-01T10:00:00+02:00,olympic,sport,true,A,125,900

  Rows of one session repeat its session columns, which must agree. ``kind`` is ``sport`` (the
  default when empty) or ``ceremony``: only sport sessions count towards a pack's minimums.

A bad session or row is reported with its line number (:class:`CatalogueError`).
"""

from __future__ import annotations

import csv
import io
from typing import Any

import msgspec

from guichet import rowfiles
from guichet.shop.model import MAX_SESSIONS, Catalogue, SessionSpec

COLUMNS = ("session", "sport", "venue", "starts_at", "games", "kind", "high_demand",
           "category", "price_eur", "seats")  # fmt: skip
_SESSION_COLUMNS = COLUMNS[:7]
_TRUE = {"true", "1", "yes", "y"}
_FALSE = {"false", "0", "no", "n", ""}


class CatalogueError(ValueError):
    """A catalogue file that cannot be loaded; the message names the line."""


def parse(data: bytes, name: str = "") -> Catalogue:
    """A catalogue from a file's bytes: CSV when the name ends in .csv, else JSON."""
    if name.lower().endswith(".csv"):
        return parse_csv(rowfiles.utf8(data, CatalogueError))
    return parse_json(data)


def parse_json(data: bytes) -> Catalogue:
    sessions = []
    lines: dict[str, int] = {}
    for line, session in rowfiles.json_rows(data, "sessions", SessionSpec, CatalogueError):
        if session.id in lines:
            raise CatalogueError(
                f"line {line}: session {session.id} again (first on line {lines[session.id]})"
            )
        lines[session.id] = line
        sessions.append(session)
    return _whole(sessions)


def _flag(value: str, column: str, line: int) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise CatalogueError(f"line {line}: {column}: {value!r} is not true or false")


def parse_csv(text: str) -> Catalogue:
    sessions: dict[str, dict[str, Any]] = {}
    lines: dict[str, int] = {}
    for line, row in rowfiles.csv_rows(text, COLUMNS, CatalogueError):
        sid = row["session"]
        head: dict[str, Any] = {
            "id": sid,
            "sport": row["sport"],
            "venue": row["venue"],
            "starts_at": row["starts_at"],
            "games": row["games"] or "olympic",
            "kind": row["kind"] or "sport",
            "high_demand": _flag(row["high_demand"], "high_demand", line),
        }
        try:
            category = {"id": row["category"], "price_eur": int(row["price_eur"]),
                        "seats": int(row["seats"])}  # fmt: skip
        except ValueError:
            raise CatalogueError(f"line {line}: price_eur and seats must be integers") from None
        try:
            msgspec.convert({**head, "categories": [category]}, SessionSpec, strict=False)
        except msgspec.ValidationError as exc:
            raise CatalogueError(f"line {line}: {rowfiles.explain(exc)}") from None
        known = sessions.get(sid)
        if known is None:
            sessions[sid] = {**head, "categories": [category]}
            lines[sid] = line
            continue
        if {k: known[k] for k in head} != head:
            raise CatalogueError(
                f"line {line}: session {sid} differs from its row on line "
                f"{lines[sid]} in a session column ({', '.join(_SESSION_COLUMNS[1:])})"
            )
        if any(c["id"] == category["id"] for c in known["categories"]):
            raise CatalogueError(f"line {line}: category {category['id']} of {sid} twice")
        known["categories"].append(category)
    specs = [msgspec.convert(s, SessionSpec, strict=False) for s in sessions.values()]
    return _whole(specs)


def _whole(sessions: list[SessionSpec]) -> Catalogue:
    if not 1 <= len(sessions) <= MAX_SESSIONS:
        raise CatalogueError(f"a catalogue has 1 to {MAX_SESSIONS} sessions, not {len(sessions)}")
    return Catalogue(sessions=sessions)


def to_csv(catalogue: Catalogue) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for s in catalogue.sessions:
        for c in s.categories:
            writer.writerow([s.id, s.sport, s.venue, s.starts_at.isoformat(), s.games, s.kind,
                             str(s.high_demand).lower(), c.id,
                             c.price_eur, c.seats])  # fmt: skip
    return out.getvalue()
