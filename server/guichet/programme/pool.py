"""The State's pool file and a programme's spec: pure, no I/O.

The pool file (``guichet programme pool load FILE``, ``PUT /v1/admin/programme/pool``) lists
the tickets the State bought, per session and category (seed 002 §intro: a central pool the
DIJOP holds):

- **JSON**: ``{"tickets": [{"games", "session", "date", "name", "category", "quantity"}, …]}``;
- **CSV**: the header ``games,session,date,name,category,quantity``, then one row per session
  and category::

      games,session,date,name,category,quantity
      olympic,ATH-01,2024-08-01,Athletics final,C,120

Rows of one session must agree on its games, date and name; a session and category appear
once; quantity is at least 1. The file loads whole or not at all: a bad row stops it, named by
its line (:class:`PoolError`).
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated

import msgspec
from msgspec import Meta

from guichet import rowfiles, wire
from guichet.programme import model

COLUMNS = ("games", "session", "date", "name", "category", "quantity")
MAX_ROWS = 100_000  # 401,220 tickets in a few thousand session x category rows
MAX_QUANTITY = 1_000_000
MAX_CRITERIA = 16

SessionName = Annotated[
    str, Meta(min_length=1, max_length=120, pattern=wire.whole(r"[^\x00-\x1f\x7f]+"))
]
Quantity = Annotated[int, Meta(ge=1, le=MAX_QUANTITY)]


class PoolError(ValueError):
    """A pool file that cannot be loaded; the message names the line."""


class PoolRow(wire.Base):
    """One session x category of the pool: how many State tickets."""

    games: model.Games
    session: model.SessionId
    date: date
    name: SessionName
    category: model.CategoryId
    quantity: Quantity


class PoolFile(wire.Base):
    """The pool file as JSON (the body of ``PUT /v1/admin/programme/pool``)."""

    tickets: Annotated[list[PoolRow], Meta(min_length=1, max_length=MAX_ROWS)]


class SessionInfo(msgspec.Struct, kw_only=True):
    """A session as the ``sessions`` hash stores it (its day in Paris), with the last instant
    a beneficiary may withdraw from it (µs, 23:59:59.999999 Paris on its eve, seed 002 §2),
    computed here once so that the withdrawal script compares it with Redis TIME alone."""

    date: str
    games: model.Games
    name: str
    withdraw_until_us: int = 0


def withdraw_until_us(day: date) -> int:
    """:func:`model.withdrawal_deadline` of a session on ``day``, in µs since the epoch."""
    deadline = model.withdrawal_deadline(day)
    return int(deadline.timestamp()) * 1_000_000 + deadline.microsecond


class Pool(msgspec.Struct, kw_only=True):
    """A checked pool file, per games: sessions and the tickets per item ("S:C")."""

    sessions: dict[str, dict[str, SessionInfo]]  # games -> session id -> info
    counts: dict[str, dict[str, int]]  # games -> item -> quantity

    def total(self, games: str) -> int:
        return sum(self.counts.get(games, {}).values())


def parse(data: bytes, name: str = "", content_type: str = "") -> Pool:
    """A pool from a file's bytes: CSV when the name ends in .csv (or the type is text/csv)."""
    if name.lower().endswith(".csv") or content_type == "text/csv":
        return parse_csv(rowfiles.utf8(data, PoolError))
    return parse_json(data)


def parse_json(data: bytes) -> Pool:
    return _whole(rowfiles.json_rows(data, "tickets", PoolRow, PoolError))


def parse_csv(text: str) -> Pool:
    rows: list[tuple[int, PoolRow]] = []
    for line, row in rowfiles.csv_rows(text, COLUMNS, PoolError):
        try:
            quantity = int(row["quantity"])
        except ValueError:
            raise PoolError(f"line {line}: quantity must be an integer") from None
        try:
            rows.append((line, msgspec.convert({**row, "quantity": quantity}, PoolRow,
                                               strict=False)))  # fmt: skip
        except msgspec.ValidationError as exc:
            raise PoolError(f"line {line}: {rowfiles.explain(exc)}") from None
    return _whole(rows)


def _whole(rows: list[tuple[int, PoolRow]]) -> Pool:
    if not 1 <= len(rows) <= MAX_ROWS:
        raise PoolError(f"a pool file has 1 to {MAX_ROWS} rows, not {len(rows)}")
    sessions: dict[str, dict[str, SessionInfo]] = {}
    counts: dict[str, dict[str, int]] = {}
    first: dict[str, int] = {}  # session -> line it first appears on
    items: dict[str, int] = {}  # item -> line
    for line, r in rows:
        info = SessionInfo(date=r.date.isoformat(), games=r.games, name=r.name,
                           withdraw_until_us=withdraw_until_us(r.date))  # fmt: skip
        known = next((s[r.session] for s in sessions.values() if r.session in s), None)
        if known is not None and known != info:
            raise PoolError(
                f"line {line}: session {r.session} differs from its row on line "
                f"{first[r.session]} (games, date and name must agree)"
            )
        if known is None:
            sessions.setdefault(r.games, {})[r.session] = info
            first[r.session] = line
        key = model.item(r.session, r.category)
        if key in items:
            raise PoolError(f"line {line}: {key} again (first on line {items[key]})")
        items[key] = line
        counts.setdefault(r.games, {})[key] = r.quantity
    return Pool(sessions=sessions, counts=counts)


def to_csv(rows: list[PoolRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r.games, r.session, r.date.isoformat(), r.name, r.category, r.quantity])
    return out.getvalue()


# --- programmes ------------------------------------------------------------------------------

Criteria = Annotated[list[wire.Slug], Meta(min_length=1, max_length=MAX_CRITERIA)]


class ProgrammeBody(wire.Base):
    """``PUT /v1/admin/programmes/{P}``: a programme of one games for one public, run by an
    operator. ``reclaim_on`` defaults to the games' date (1 May / 1 June 2024, seed §2); the
    beneficiaries' data is purged after ``retention_until``. Games and public are fixed once
    the programme exists."""

    public: model.Public
    games: model.Games
    operator: wire.Slug
    retention_until: date
    criteria: Criteria
    reclaim_on: date | None = None

    def __post_init__(self) -> None:
        if len(set(self.criteria)) != len(self.criteria):
            raise ValueError("`criteria` lists a criterion twice")
        if self.retention_until <= self.reclaim_day():
            raise ValueError("`retention_until` must be after reclaim_on")

    def reclaim_day(self) -> date:
        return self.reclaim_on or model.RECLAIM_ON[self.games]


class ProgrammeSpec(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A programme as the ``programmes`` hash stores it (``at``: µs, Redis TIME, appended by
    programme_put.lua: cjson would round a µs time)."""

    id: str
    public: model.Public
    games: model.Games
    operator: str
    reclaim_on: date
    retention_until: date
    criteria: list[str]
    by: str
    at: int = 0


def spec_of(programme: str, body: ProgrammeBody, by: str) -> ProgrammeSpec:
    return ProgrammeSpec(
        id=programme, public=body.public, games=body.games, operator=body.operator,
        reclaim_on=body.reclaim_day(), retention_until=body.retention_until,
        criteria=list(body.criteria), by=by,
    )  # fmt: skip


# --- allocations -----------------------------------------------------------------------------


class AllocationItem(wire.Base):
    session: model.SessionId
    category: model.CategoryId
    quantity: Quantity


class AllocationBody(wire.Base):
    """``POST /v1/admin/programmes/{P}/allocations``: tickets moved from the pool to the
    programme, all or nothing."""

    items: Annotated[list[AllocationItem], Meta(min_length=1, max_length=1000)]

    def __post_init__(self) -> None:
        seen = set()
        for i in self.items:
            key = model.item(i.session, i.category)
            if key in seen:
                raise ValueError(f"`items` lists {key} twice")
            seen.add(key)

    def counts(self) -> dict[str, int]:
        return {model.item(i.session, i.category): i.quantity for i in self.items}
