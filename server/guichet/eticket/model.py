"""E-tickets, the pure rules: which tickets a purchase makes, their ids, their signed claims,
and the wire types of the ticket and gate endpoints.

Where the rules come from: the seed says nothing of tickets after the purchase; one ticket
per seat bound to its buyer's account, with no transfer, is the brief of issue 13 (Paris 2024
did issue nominative e-tickets; resale went through an official platform we do not model).
The payload format (compact JWS, EdDSA) and the id scheme are our design.

A purchase (a confirmed hold) makes one ticket per seat, numbered 1..n in the order of the
hold's items: ticket ``<hold>.<n>``. Nothing else is stored per ticket: the hold record is the
source, so a ticket list is derived, always the same, from the purchase.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from msgspec import Meta

from guichet import wire

#: A hold id (shop.routes.HOLD_ID), a dot, the seat number (1..1000).
TICKET_ID = re.compile(r"([A-Za-z0-9_-]{9,40})\.([1-9][0-9]{0,3})")  # fullmatch: no "\n"
MAX_SEATS = 1000  # far above any quota (30 per account): a bound for parsing only
#: Longest payload a gate may send (a JWS of our claims is ~450 characters).
MAX_PAYLOAD_LEN = 2048
GateId = Annotated[
    str,
    Meta(
        pattern=wire.whole(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}"),
        description="the scanning gate, e.g. SDF-N3",
    ),
]


@dataclass(frozen=True)
class Seat:
    """One ticket of a purchase, before signing."""

    id: str
    hold: str
    number: int
    sale: str
    session: str
    category: str
    account: str
    #: A State programme's ticket (then ``sale``, ``hold`` and ``account`` are empty: it is
    #: nominative, bound to a beneficiary's pseudonym, not to an account's purchase).
    programme: str = ""


def ticket_id(hold: str, number: int) -> str:
    return f"{hold}.{number}"


def parse_ticket_id(raw: str) -> tuple[str, int] | None:
    """(hold id, seat number) of a ticket id, or None when it cannot be one."""
    m = TICKET_ID.fullmatch(raw)
    if m is None or int(m[2]) > MAX_SEATS:
        return None
    return m[1], int(m[2])


def seats(sale: str, hold: str, account: str, items: Sequence[tuple[str, int, str]]) -> list[Seat]:
    """The tickets of a purchase: one per seat, numbered in the order of its items
    (``(stock field "<session>:<category>", quantity, session)`` as the hold record has them)."""
    out: list[Seat] = []
    for field, quantity, session in items:
        category = field.partition(":")[2]
        for _ in range(quantity):
            n = len(out) + 1
            out.append(Seat(ticket_id(hold, n), hold, n, sale, session, category, account))
    return out


def claims(
    seat: Seat, *, issuer: str, audience: str, issued_s: int, valid_s: int
) -> dict[str, Any]:
    """The signed claims of a ticket: short names, so that the QR code stays small."""
    return {
        "iss": issuer,
        "aud": audience,
        "sub": seat.account,
        "tid": seat.id,
        "sale": seat.sale,
        "ses": seat.session,
        "cat": seat.category,
        "iat": issued_s,
        "exp": issued_s + valid_s,
    }


#: Claims a ticket payload must carry (``signing.verify`` checks their presence).
REQUIRED = ("iss", "aud", "sub", "tid", "sale", "ses", "cat", "iat", "exp")


def seat_of(c: Mapping[str, Any]) -> Seat | None:
    """The ticket a verified payload names, or None when its claims are not a ticket's."""
    fields = [c.get(k) for k in ("tid", "sale", "ses", "cat", "sub")]
    if not all(isinstance(f, str) and 0 < len(f) <= 128 for f in fields):
        return None
    tid, sale, session, category, account = (str(f) for f in fields)
    parsed = parse_ticket_id(tid)
    if parsed is None or not wire.valid_slug(sale):
        return None
    return Seat(tid, parsed[0], parsed[1], sale, session, category, account)


# --- wire types ----------------------------------------------------------------------------

TicketState = Literal["valid", "used"]
Format = Literal["json", "svg", "png"]


class Ticket(wire.Reply, kw_only=True):
    """One e-ticket: who may use it, for what, its signed payload (what the QR code holds)."""

    id: str
    sale: str
    session: str
    category: str
    account: str
    hold: str
    state: TicketState
    payload: str
    used_at: str | None = None
    gate: str | None = None


class Tickets(wire.Reply, kw_only=True):
    sale: str
    tickets: list[Ticket]


class ScanRequest(wire.Base, kw_only=True):
    """What a gate reads from the QR code, and which gate it is."""

    payload: Annotated[str, Meta(min_length=1, max_length=MAX_PAYLOAD_LEN)]
    gate: GateId


class Scanned(wire.Reply, kw_only=True):
    """An accepted scan: the ticket is now used, here and now. A sale's ticket names its sale
    and account, a State programme's ticket its programme."""

    ticket: str
    sale: str | None = None
    programme: str | None = None
    session: str
    category: str
    account: str | None = None
    used_at: str
    gate: str


def pick_format(query: str | None, accept: str | None) -> Format | None:
    """``?format=`` wins; else the first of SVG, PNG, JSON the ``Accept`` header names;
    JSON when neither says. None: an unknown ``?format``."""
    if query is not None:
        return query if query in ("json", "svg", "png") else None  # type: ignore[return-value]
    for part in (accept or "").split(","):
        media = part.split(";")[0].strip().lower()
        if media == "image/svg+xml":
            return "svg"
        if media == "image/png":
            return "png"
        if media in ("application/json", "*/*", "application/*"):
            return "json"
    return "json"


def used_record(raw: str) -> tuple[int, str]:
    """The stored first scan ``"<µs> <gate>"`` as (µs, gate)."""
    when, _, gate = raw.partition(" ")
    return int(when), gate


def expand(
    sale: str, account: str, records: Iterable[tuple[str, Sequence[tuple[str, int, str]]]]
) -> list[Seat]:
    """Every ticket of an account's purchases (hold id, items), in hold id order."""
    out: list[Seat] = []
    for hold, items in sorted(records):
        out.extend(seats(sale, hold, account, items))
    return out
