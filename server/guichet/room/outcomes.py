"""What the room's scripts answer, typed, and the room's one refusal table.

Each script's codes are a ``Literal`` (its header comment lists them); the service decodes a
reply into one of the named tuples below (times in seconds), checking the code, and the
routes turn a refusal code into its problem through :data:`REFUSALS`. mypy flags a code that
is misspelt in a comparison or in the table.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import msgspec

from guichet.refusals import Refusal, code_of

JoinCode = Literal[
    "ok", "again", "unknown", "closed", "limited_ip", "limited_account", "rejecting",
    "replayed", "unproven",  # the proof-of-work door (challenge.py)
]  # fmt: skip
AdmitCode = Literal[
    "ok", "again", "unknown", "mismatch", "not_ready", "expired", "used", "full", "rejecting"
]  # fmt: skip
LeaveCode = Literal["ok", "again", "mismatch"]
HeartbeatCode = Literal["ok", "gone", "unknown"]
ConfigureCode = Literal["created", "updated", "exists", "unknown", "bad_window"]
TickCode = Literal["ok", "unknown"]

#: The codes that refuse a request, whichever script said them.
Refused = Literal[
    "unknown", "closed", "limited_ip", "limited_account", "mismatch", "not_ready", "expired",
    "used", "full", "gone", "rejecting",
]  # fmt: skip

_TOO_MANY = Refusal(429, "rate-limited", "Too many requests")
_ENDED = Refusal(409, "session-ended", "Session ended")

REFUSALS: dict[Refused, Refusal] = {
    "unknown": Refusal(404, "not-found", "Not found"),
    "closed": Refusal(409, "room-closed", "Room closed"),
    "limited_ip": _TOO_MANY,
    "limited_account": _TOO_MANY,
    "mismatch": Refusal(403, "forbidden", "Not allowed"),
    "not_ready": Refusal(409, "not-ready", "Not your turn yet"),
    "expired": Refusal(409, "ticket-expired", "Ticket expired"),
    "used": _ENDED,
    "full": Refusal(409, "room-full", "Room full"),
    "gone": _ENDED,
    "rejecting": Refusal(409, "room-rejecting", "Room not letting anyone in"),
}
#: The detail of every ``rejecting`` refusal (queueing mode ``reject``).
REJECTING_DETAIL = "the room is not letting anyone in right now"


class Joining(NamedTuple):
    """join.lua: the ticket id ('' when refused) and, when rate-limited, when to retry."""

    code: JoinCode
    ticket: str
    retry_after_s: float


class Admitting(NamedTuple):
    """admit.lua: when the session began and when it expires (0 when refused)."""

    code: AdmitCode
    admitted_at: float
    expires_at: float


class Leaving(NamedTuple):
    """leave.lua: whether an active session's slot was freed."""

    code: LeaveCode
    freed: bool


class Beating(NamedTuple):
    """heartbeat.lua: the session's new idle expiry (0 when refused)."""

    code: HeartbeatCode
    expires_at: float


class Tick(msgspec.Struct, frozen=True):
    """tick.lua's snapshot of a room, decoded by name (times in µs, as the script counts)."""

    now: int
    opens: int
    closes: int
    opened_us: int  # 0 until the room opened
    pre: int
    issued: int
    serving: int
    floor: int
    active: int
    admitted: int
    expired: int
    measured_rate: float
    effective_rate: float
    stock: str  # share of the linked sale's stock left, '' without a signal
    paused: bool
    seed: str
    opened_now: bool
    reaped: int
    version: str  # the cfg hash's version: the spec changed when it moves
    ended: list[str] = []  # stream id, account, ...: sessions ended after the caller's cursor
    mode: str = "shuffle-then-fifo"  # the queueing mode in force (cfg)
    open_mode: str = ""  # the mode in force at opening ('' before)
    rseed: str = ""  # the random draw's seed ('' until the room ticked in random mode)
    draw_from: int = 0  # the cursor the caller sent: index of draw[0] in the draw log
    draw_len: int = 0  # entries in the draw log
    draw: list[str] = []  # draw-log batches from draw_from on


def tick_of(reply: list[Any]) -> Tick | None:
    """tick.lua's flat name/value reply as a :class:`Tick`; None when the room is unknown."""
    fields: dict[str, Any] = {}
    for name, value in zip(reply[::2], reply[1::2], strict=True):
        if isinstance(value, list):  # 'ended': stream ids and accounts
            fields[name.decode()] = [v.decode() for v in value]
        else:
            fields[name.decode()] = value.decode() if isinstance(value, bytes) else value
    if code_of(str(fields.pop("code")).encode(), TickCode, "tick") == "unknown":
        return None
    return msgspec.convert(fields, Tick, strict=False)
