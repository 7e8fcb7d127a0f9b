"""The shop's pure rules and wire types: catalogue, phase rules, holds.

Rules of the sale, per sale and configurable, and where each comes from:

- **packs phase** (the seed: "au minimum trois billets (dans trois sessions sportives
  différentes) et au maximum de 30 billets (soit 10 packs) par compte"): every pack has at
  least ``pack_min_tickets`` (3) tickets in at least ``pack_min_sessions`` (3) distinct
  *sport* sessions (sessions of ``kind`` sport); tickets of other kinds (ceremonies) may be
  added to a pack but do not count towards either minimum; an account holds or buys at most
  ``max_packs`` (10) packs and ``max_tickets`` (30) tickets. At most ``pack_max_per_session``
  (6) tickets per session and account across its packs: a public Paris 2024 fact, not the seed;
- **singles phase** (the seed: "une vente à l'unité aura lieu au printemps"; the caps are
  public Paris 2024 facts, not the seed): at most ``max_per_session`` (6) tickets per session,
  ``max_per_session_limited`` (4) for ceremonies and high-demand sessions, and ``max_tickets``
  (30) per account in total, counting both phases (the sale keeps one usage record per account);
- **period and games**: holds are taken only inside the sale's purchase period (the seed's
  packs sale: "15 février au 15 mars"), decided by ``hold.lua`` on Redis TIME; a sale sells
  the sessions of one games (the seed: the Paralympic sale is a separate one, "à l'automne
  2023"), so its catalogue's ``games`` must match the sale's.

Held and sold tickets both count. ``check_hold`` is the reference the hold script
(``hold.lua``) enforces atomically; a property test runs both on the same cases.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from guichet import wire
from guichet.draw.model import WindowState
from guichet.units import US_PER_S

SessionId = Annotated[
    str, Meta(pattern=wire.whole(r"[A-Z0-9][A-Z0-9-]{0,23}"), description="e.g. ATH-07")
]
CategoryId = Annotated[
    str, Meta(pattern=wire.whole(r"[A-Z][A-Z0-9]{0,3}"), description="e.g. A, B, C")
]
Phase = Literal["packs", "singles"]
Games = Literal["olympic", "paralympic"]
#: What a session is: only ``sport`` sessions count towards a pack's minimums (the seed).
SessionKind = Literal["sport", "ceremony"]
Quantity = Annotated[int, Meta(ge=1, le=30)]


# --- catalogue ---------------------------------------------------------------------------------


class Category(wire.Base, kw_only=True):
    id: CategoryId
    price_eur: Annotated[int, Meta(ge=0, le=10_000)]
    seats: Annotated[int, Meta(ge=0, le=200_000)]


class SessionSpec(wire.Base, kw_only=True):
    """One session of the Games and its price categories."""

    id: SessionId
    sport: Annotated[str, Meta(min_length=1, max_length=60)]
    venue: Annotated[str, Meta(min_length=1, max_length=80)]
    starts_at: wire.Instant
    games: Games = "olympic"
    kind: SessionKind = "sport"
    high_demand: bool = False
    categories: Annotated[list[Category], Meta(min_length=1, max_length=8)]

    def __post_init__(self) -> None:
        if self.starts_at.tzinfo is None:
            raise ValueError("`starts_at` needs a UTC offset (RFC 3339)")
        if len({c.id for c in self.categories}) != len(self.categories):
            raise ValueError("`categories` lists a category twice")

    @property
    def limited(self) -> bool:
        """Ceremonies and high-demand sessions have the lower per-session limit."""
        return self.kind == "ceremony" or self.high_demand


MAX_SESSIONS = 5000


class Catalogue(wire.Base, kw_only=True):
    sessions: Annotated[list[SessionSpec], Meta(min_length=1, max_length=MAX_SESSIONS)]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for s in self.sessions:
            if s.id in seen:
                raise ValueError(f"`sessions` lists session {s.id} twice")
            seen.add(s.id)


def other_games(catalogue: Catalogue, games: Games) -> tuple[int, SessionSpec] | None:
    """The first session (and its index) that is not of ``games``: a sale sells one games."""
    for index, s in enumerate(catalogue.sessions):
        if s.games != games:
            return index, s
    return None


def item_key(session: str, category: str) -> str:
    """The stock field of one session and category."""
    return f"{session}:{category}"


# --- sale rules ---------------------------------------------------------------------------------


class SaleSpec(wire.Base, kw_only=True):
    """A sale's phase and rules, as ops configure them (see the module's docstring for where
    each rule comes from)."""

    phase: Phase = "packs"
    games: Games = "olympic"
    #: The purchase period (RFC 3339): holds are refused outside it, and a wave's windows
    #: must fall inside it. None: no bound on that side.
    purchase_opens_at: wire.Instant | None = None
    purchase_closes_at: wire.Instant | None = None
    hold_ttl_s: Annotated[int, Meta(ge=1, le=3600)] = 600
    window_required: bool = True
    pack_min_tickets: Annotated[int, Meta(ge=1, le=30)] = 3
    pack_min_sessions: Annotated[int, Meta(ge=1, le=30)] = 3
    max_packs: Annotated[int, Meta(ge=1, le=100)] = 10
    max_tickets: Annotated[int, Meta(ge=1, le=1000)] = 30
    pack_max_per_session: Annotated[int, Meta(ge=1, le=100)] = 6
    max_per_session: Annotated[int, Meta(ge=1, le=100)] = 6
    max_per_session_limited: Annotated[int, Meta(ge=1, le=100)] = 4

    def __post_init__(self) -> None:
        if self.pack_min_sessions > self.pack_min_tickets:
            raise ValueError("`pack_min_sessions` cannot exceed `pack_min_tickets`")
        if self.max_per_session_limited > self.max_per_session:
            raise ValueError("`max_per_session_limited` cannot exceed `max_per_session`")
        for name in ("purchase_opens_at", "purchase_closes_at"):
            at = getattr(self, name)
            if at is not None and at.tzinfo is None:
                raise ValueError(f"`{name}` needs a UTC offset (RFC 3339)")
        if (
            self.purchase_opens_at is not None
            and self.purchase_closes_at is not None
            and self.purchase_closes_at <= self.purchase_opens_at
        ):
            raise ValueError("`purchase_closes_at` must come after `purchase_opens_at`")

    def period_us(self) -> tuple[int | None, int | None]:
        """The purchase period as µs since the epoch (None: no bound on that side)."""
        return _us(self.purchase_opens_at), _us(self.purchase_closes_at)

    def period_text(self) -> str:
        """The purchase period as people read it (RFC 3339 ends)."""
        opens, closes = self.purchase_opens_at, self.purchase_closes_at
        return (f"{'…' if opens is None else opens.isoformat()} to "
                f"{'…' if closes is None else closes.isoformat()}")  # fmt: skip


def _us(at: datetime | None) -> int | None:
    return None if at is None else round(at.timestamp() * US_PER_S)


def outside_period(spec: SaleSpec, starts_us: int, ends_us: int) -> bool:
    """Whether [starts, ends] (a wave's windows) is not inside the sale's purchase period."""
    opens, closes = spec.period_us()
    return (opens is not None and starts_us < opens) or (closes is not None and ends_us > closes)


# --- holds -----------------------------------------------------------------------------------


class Item(wire.Base, kw_only=True):
    session: SessionId
    category: CategoryId
    quantity: Quantity


class Pack(wire.Base, kw_only=True):
    items: Annotated[list[Item], Meta(min_length=1, max_length=30)]


class HoldRequest(wire.Base, kw_only=True):
    """Packs phase: ``packs``; singles phase: ``items``."""

    packs: Annotated[list[Pack], Meta(max_length=10)] | None = None
    items: Annotated[list[Item], Meta(min_length=1, max_length=30)] | None = None

    def __post_init__(self) -> None:
        if (self.packs is None) == (self.items is None):
            raise ValueError("give either `packs` (packs phase) or `items` (singles phase)")

    def lines(self) -> list[Item]:
        if self.items is not None:
            return list(self.items)
        return [i for p in self.packs or () for i in p.items]


#: The hold body as OpenAPI states it: ``packs`` or ``items``, exactly one of them a list.
HoldBody = Annotated[
    HoldRequest,
    Meta(
        extra_json_schema={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": "array"}}}
                for name in ("packs", "items")
            ]
        }
    ),
]


@dataclass(frozen=True)
class Violation:
    """Why a hold is refused: a stable rule name, the item or pack concerned, a sentence."""

    rule: str
    detail: str
    item: str | None = None


@dataclass(frozen=True)
class Usage:
    """An account's tickets and packs in this sale, held and sold together."""

    tickets: int = 0
    packs: int = 0
    per_session: Mapping[str, int] = field(default_factory=dict)


def merged(items: Iterable[Item]) -> dict[str, int]:
    """Quantities by stock field (the same item twice adds up)."""
    out: Counter[str] = Counter()
    for i in items:
        out[item_key(i.session, i.category)] += i.quantity
    return dict(out)


def check_shape(
    request: HoldRequest, spec: SaleSpec, kinds: Mapping[str, SessionKind] | None = None
) -> Violation | None:
    """Rules about the request and the catalogue: the phase's form, and every pack's
    composition, where only sport sessions count (``kinds``: the catalogue's sessions; one it
    does not know counts as sport here, and the hold script refuses it as unknown)."""
    kinds = kinds or {}
    if spec.phase == "packs":
        if request.packs is None:
            return Violation(
                "phase", "this sale is in its packs phase: send `packs`, not `items`", "items"
            )
        for number, pack in enumerate(request.packs, 1):
            sport = [i for i in pack.items if kinds.get(i.session, "sport") == "sport"]
            tickets = sum(i.quantity for i in sport)
            sessions = len({i.session for i in sport})
            if tickets < spec.pack_min_tickets or sessions < spec.pack_min_sessions:
                return Violation(
                    "pack_composition",
                    f"pack {number} has {tickets} tickets in {sessions} sport sessions; a pack "
                    f"needs at least {spec.pack_min_tickets} tickets in "
                    f"{spec.pack_min_sessions} distinct sport sessions (ceremonies may be "
                    "added but do not count)",
                    item=f"pack {number}",
                )
    elif request.items is None:
        return Violation(
            "phase", "this sale is in its singles phase: send `items`, not `packs`", "packs"
        )
    return None


def check_hold(
    request: HoldRequest,
    spec: SaleSpec,
    usage: Usage,
    limited: set[str],
    kinds: Mapping[str, SessionKind] | None = None,
) -> Violation | None:
    """The reference of the hold rules (shape, then quotas); stock, the purchase period and
    window are checked by the caller (the hold script, on Redis TIME)."""
    shape = check_shape(request, spec, kinds)
    if shape is not None:
        return shape
    lines = request.lines()
    tickets = sum(i.quantity for i in lines)
    if usage.tickets + tickets > spec.max_tickets:
        return Violation(
            "max_tickets",
            f"{usage.tickets} tickets held or bought already; at most {spec.max_tickets} per "
            "account",
        )
    if request.packs is not None and usage.packs + len(request.packs) > spec.max_packs:
        return Violation(
            "max_packs", f"{usage.packs} packs held or bought already; at most {spec.max_packs}"
        )
    per_session: Counter[str] = Counter()
    for i in lines:
        per_session[i.session] += i.quantity
    for session, quantity in per_session.items():  # in order of first appearance, as hold.lua
        if spec.phase == "packs":
            limit = spec.pack_max_per_session
        else:
            limit = spec.max_per_session_limited if session in limited else spec.max_per_session
        if usage.per_session.get(session, 0) + quantity > limit:
            return Violation(
                "max_per_session", f"at most {limit} tickets for session {session}", item=session
            )
    return None


# --- replies ---------------------------------------------------------------------------------

HoldState = Literal["held", "confirmed", "released", "expired"]


class SaleWindow(wire.Reply, kw_only=True):
    state: WindowState
    starts_at: str | None = None
    ends_at: str | None = None


def sale_window(state: WindowState, starts_us: int, ends_us: int) -> SaleWindow:
    """An account's purchase window as the shop shows it (no times when it has none)."""
    if state == "none":
        return SaleWindow(state=state)
    return SaleWindow(
        state=state,
        starts_at=wire.rfc3339(starts_us / US_PER_S),
        ends_at=wire.rfc3339(ends_us / US_PER_S),
    )


class HoldItem(wire.Reply, kw_only=True):
    session: str
    category: str
    quantity: int


class Hold(wire.Reply, kw_only=True):
    id: str
    sale: str
    state: HoldState
    items: list[HoldItem]
    tickets: int
    packs: int
    expires_at: str
    payment_reference: str | None = None


class Confirm(wire.Base, kw_only=True):
    payment_reference: Annotated[
        str, Meta(min_length=1, max_length=64, pattern=wire.whole(r"[\x21-\x7e]+"))
    ]
