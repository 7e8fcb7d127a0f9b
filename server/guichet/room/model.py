"""Waiting-room wire types and pure rules (queue order, ETA, pacing, status), no I/O.

Numbers: everyone who joins before ``opens_at`` gets a pre-queue index ``p`` (join order);
at opening the ``N`` pre-queue people receive the numbers ``0 … N-1`` in a random order drawn
from a seed (:func:`queue_order`), and later arrivals get ``N, N+1, …`` first come, first
served. The *serving counter* ``S`` says how many numbers have been called: number ``n`` is
ready once ``n < S``; ``n - S`` people are ahead of it.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import msgspec
import numpy as np
from msgspec import Meta

from guichet import wire

RoomId = wire.Slug
Mode = Literal["fifo", "shuffle-then-fifo", "random", "passthrough", "reject"]
MODES: tuple[Mode, ...] = ("fifo", "shuffle-then-fifo", "random", "passthrough", "reject")
State = Literal["prequeue", "waiting", "ready", "admitted", "expired", "closed", "sold_out"]
STATES: tuple[State, ...] = (
    "prequeue", "waiting", "ready", "admitted", "expired", "closed", "sold_out",
)  # fmt: skip

Rate = Annotated[float, Meta(gt=0, le=100_000, description="people admitted per second")]
MaxActive = Annotated[int, Meta(ge=1, le=10_000_000)]
IdleTimeout = Annotated[int, Meta(ge=10, le=86_400, description="seconds")]
Url = Annotated[
    str, Meta(pattern=wire.whole(r"https?://[^\s\[\]]+"), max_length=2048)
]  # no IPv6 literals
Audience = Annotated[str, Meta(min_length=1, max_length=200, pattern=wire.whole(r"[!-~]+"))]
SaleId = wire.Slug
DrawId = wire.Slug
TokenTtl = Annotated[int, Meta(ge=30, le=3600, description="admission token lifetime, s")]
#: What the landing page shows for a room (any text, no control characters; HTML-escaped).
RoomName = Annotated[
    str,
    Meta(min_length=1, max_length=100, pattern=wire.whole(r"[^\x00-\x1f\x7f]+"),
         description="display name on the landing page"),
]  # fmt: skip

#: Proof-of-work difficulty at join: leading zero bits of SHA-256 (challenge.py), 0 = off.
ChallengeBits = Annotated[int, Meta(ge=0, le=30, description="proof-of-work bits, 0 = off")]

valid_room_id = wire.valid_slug


class RoomSpec(wire.Base, kw_only=True):
    """A room's configuration, as ops set it (admin API, CLI or config file)."""

    opens_at: wire.Instant
    closes_at: wire.Instant
    rate_per_s: Rate
    max_active: MaxActive
    audience: Audience
    target_url: Url
    idle_timeout_s: IdleTimeout = 900
    mode: Mode = "shuffle-then-fifo"
    #: The sale this room meters (stock signal) and guards (holds need its admission token).
    sale: SaleId | None = None
    #: The draw whose registration this room guards (entries need its admission token).
    draw: DrawId | None = None
    token_ttl_s: TokenTtl = 300
    paused: bool = False
    #: Shown on the landing page (``GET /``) instead of the bare id.
    name: RoomName | None = None
    #: Whether the landing page lists the room while it is not closed (false: reached only
    #: through the ticketing site's links).
    listed: bool = True
    #: Proof-of-work difficulty at join (leading zero bits of SHA-256, 0 = off; challenge.py).
    challenge_bits: ChallengeBits = 0

    def __post_init__(self) -> None:
        for name in ("opens_at", "closes_at"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"`{name}` needs a UTC offset (RFC 3339), e.g. ...Z")
        if self.closes_at <= self.opens_at:
            raise ValueError("`closes_at` must be after `opens_at`")


class RoomDefinition(RoomSpec, kw_only=True):
    """A room in the config file: its spec plus its id."""

    id: RoomId


class RoomPatch(wire.Base, kw_only=True):
    """A live change: only the fields given change; the pacer applies it within a second."""

    rate_per_s: Rate | None = None
    max_active: MaxActive | None = None
    idle_timeout_s: IdleTimeout | None = None
    paused: bool | None = None
    closes_at: wire.Instant | None = None
    #: Queueing mode, switched live (see docs/architecture.md, "Queueing modes").
    mode: Mode | None = None
    challenge_bits: ChallengeBits | None = None

    def __post_init__(self) -> None:
        if self.closes_at is not None and self.closes_at.tzinfo is None:
            raise ValueError("`closes_at` needs a UTC offset (RFC 3339), e.g. ...Z")


class StockSignal(wire.Base, kw_only=True):
    """What the linked sale reports: the share of its stock still unsold (1 = all, 0 = none)."""

    remaining: Annotated[float, Meta(ge=0, le=1)]


# --- replies --------------------------------------------------------------------------------


class Status(wire.Reply, kw_only=True):
    """Where a queue ticket stands. ``position`` is 1 for the next person to be called.

    ``seen`` is opaque: send it back in the ``X-Queue-Seen`` header of the next poll (the event
    stream sends it as the event id) and the answer is never behind it, whichever server
    answers: the position never goes back up."""

    room: str
    state: State
    number: int | None = None
    position: int | None = None
    ahead: int | None = None
    eta_s: int | None = None
    serving: int
    admission_rate: float
    poll_after_ms: int
    opens_at: str
    closes_at: str
    seen: str | None = None  # signed furthest counters shown: send back as X-Queue-Seen
    #: The queueing mode in force (fifo, shuffle-then-fifo, random, passthrough, reject).
    mode: Mode = "shuffle-then-fifo"
    #: random mode: how many people are in the draw now (else null).
    in_draw: int | None = None


class Joined(Status, kw_only=True):
    """A queue ticket: the signed ``ticket`` (also set as a cookie) and where it stands."""

    ticket: str
    created: bool


class Admission(wire.Reply, kw_only=True):
    """An admission token for the protected site, and where to go with it."""

    room: str
    token: str
    token_expires_at: str
    session_expires_at: str
    redirect_url: str
    ticket: str


class Left(wire.Reply, kw_only=True):
    room: str
    state: Literal["left"]


class Session(wire.Reply, kw_only=True):
    """A kept-alive session and a fresh admission token to use from now on."""

    room: str
    session_expires_at: str
    token: str
    token_expires_at: str


class Jwks(wire.Reply, kw_only=True):
    keys: list[dict[str, str]]


class RoomStats(wire.Reply, kw_only=True):
    """What ops watch: the room's spec and live counters."""

    id: str
    spec: RoomSpec
    phase: Literal["prequeue", "open", "closed"]
    serving: int
    issued: int
    prequeue: int
    waiting: int
    active: int
    admitted_total: int
    expired_total: int
    admission_rate: float
    effective_rate: float
    stock_remaining: float | None
    sold_out: bool
    shuffle_seed: str | None
    opened_at: str | None
    #: The random-mode draw's seed, revealed once the room has closed (until then a seed
    #: known to anyone would let them time joins to the draw's picks).
    random_seed: str | None = None
    #: SHA-256 (hex) of that seed's text, published from the room's first random tick: the
    #: commitment the revealed seed is checked against.
    random_seed_sha256: str | None = None


class RoomList(wire.Reply, kw_only=True):
    rooms: list[RoomStats]


# --- pure rules ------------------------------------------------------------------------------


def queue_order(seed: bytes, count: int, mode: Mode) -> np.ndarray:
    """The numbers given to the ``count`` pre-queue people: ``order[p]`` for join index ``p``.

    ``shuffle-then-fifo``: a uniformly random permutation of ``0 … count-1`` (Fisher-Yates by
    NumPy's ``Generator.permutation`` over PCG64 seeded with the 256-bit integer of ``seed``,
    big-endian), so anyone holding the published seed can recompute every number.
    Any other mode (``fifo``, ``random``, ``passthrough``, ``reject``): join order,
    ``order[p] = p`` (random mode draws among those waiting after opening, see lottery.py).
    """
    if mode != "shuffle-then-fifo":  # random draws after opening; the others keep join order
        return np.arange(count, dtype=np.int64)
    generator = np.random.Generator(np.random.PCG64(int.from_bytes(seed, "big")))
    return generator.permutation(count).astype(np.int64)


def metered_rate(rate: float, stock_remaining: float | None) -> float:
    """The admission rate once the linked sale's stock is taken into account.

    Full rate while at least 20 % of the stock is left, then in proportion down to 5 % of the
    rate at the last seat (never stalled while seats remain), and 0 once sold out.
    """
    if stock_remaining is None:
        return rate
    if stock_remaining <= 0:
        return 0.0
    return rate * max(0.05, min(1.0, stock_remaining / 0.2))


def eta_s(ahead: int, rate: float) -> int | None:
    """Seconds until ``ahead`` more people are called at the measured ``rate`` (None: unknown)."""
    if ahead <= 0:
        return 0
    if rate <= 0:
        return None
    return math.ceil(ahead / rate)


def poll_after_ms(ahead: int | None, rate: float) -> int:
    """How long a client should wait before polling again: often near the front, rarely far
    back, so polling load falls as the line grows. Between 1 and 30 seconds."""
    if ahead is None or rate <= 0:
        return 5_000
    seconds = ahead / rate / 10
    return int(min(30_000, max(1_000, seconds * 1000)))


class Counters(msgspec.Struct, frozen=True):
    """A worker's snapshot of one room (refreshed every ~200 ms by the pacer tick)."""

    now: float  # Redis TIME at the snapshot, UNIX seconds
    opens_at: float
    closes_at: float
    opened: bool
    prequeue: int  # people in the pre-queue (frozen at opening)
    issued: int  # numbers handed out so far
    serving: int
    floor: int  # numbers below this were called more than ready_grace_s ago
    active: int
    admitted_total: int
    expired_total: int
    rate: float  # measured: numbers called per second over the last window
    effective_rate: float  # configured rate after pause and stock metering
    sold_out: bool
    stock_remaining: float | None
    paused: bool
    seed: str | None
    opened_at: float | None
    mode: Mode = "shuffle-then-fifo"  # the mode in force (cfg), as of this snapshot
    open_mode: Mode | None = None  # the mode in force when the room opened (pre-queue order)
    random_seed: str | None = None  # the random-mode draw's seed, once it ticked in that mode


def state_of(number: int | None, pre_index: int | None, c: Counters, now: float) -> State:
    """The state of a ticket holding ``number`` (or only ``pre_index`` before opening)."""
    if number is None:
        return "prequeue" if not c.opened and now < c.closes_at else "closed"
    if number < c.serving:
        return "expired" if number < c.floor else "ready"
    if c.sold_out:
        return "sold_out"
    if now >= c.closes_at:
        return "closed"
    return "waiting"
