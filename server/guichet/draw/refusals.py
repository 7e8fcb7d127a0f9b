"""What the draw's scripts answer, typed, and the one table of the problems their refusals
become. Handlers decode, call the service, and turn a refusal into its problem here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from guichet import errors, wire
from guichet.refusals import Explained, Explaining, check_complete
from guichet.units import US_PER_S

#: register.lua: 'again' is the same entry (idempotent), even after the close.
RegisterCode = Literal[
    "created", "again", "unknown", "not_open", "closed", "bad_stratum", "not_a_member", "stale"
]  # fmt: skip
#: members.lua: 'open' is a stratum anyone may claim (no member list to load).
MembersCode = Literal["ok", "unknown", "committed", "open"]
#: withdraw.lua: 'none' is no entry of this account, 'unknown' no such draw.
WithdrawCode = Literal["ok", "none", "closed", "unknown"]
PutScriptCode = Literal["ok", "committed", "orphans"]
#: put.lua's codes as the service answers them: its 'ok' is 'created' or 'replaced'.
PutCode = Literal["created", "replaced", "committed", "orphans"]
#: commit.lua: 'exists' carries the first commitment (never replaced).
CommitCode = Literal["ok", "exists", "closed", "unknown"]
#: The run's and the waves' scripts (batch jobs: a refusal is a RunError naming it).
BeginCode = Literal[
    "started", "resumed", "ran", "unknown", "uncommitted", "open", "beacon_differs",
    "set_differs", "chunk_differs",
]  # fmt: skip
FinishCode = Literal["ok", "ran", "not_started", "incomplete"]
WaveCode = Literal["ok", "done", "moved", "pending", "stale", "short_notice"]
#: Every refusal the draw's handlers answer: the keys of :data:`REFUSALS`. Named for what they
#: mean: a script code may mean two of them ('closed' to register or to withdraw).
Refused = Literal[
    "no_draw", "bad_stratum", "not_open", "closed", "no_entry", "withdrawal_closed",
    "committed", "orphans", "not_a_member",
]  # fmt: skip


@dataclass(frozen=True)
class Facts:
    """What a refusal names: the registration period (µs), the stratum and its entries."""

    opens_us: int = 0
    closes_us: int = 0
    stratum: str = ""
    entries: int = 0


NO_FACTS = Facts()


def _period(f: Facts) -> str:
    return f"[{wire.rfc3339(f.opens_us / US_PER_S)}, {wire.rfc3339(f.closes_us / US_PER_S)})"


def _no_entry(draw: str, _f: Facts) -> Explained:
    return Explained(f"no entry of this account in draw {draw!r}")


def _orphans(_draw: str, f: Facts) -> Explained:
    return Explained(
        f"stratum {f.stratum!r} holds {f.entries} entries: keep it in `strata` "
        "(entries are never moved between strata)",
        context={"stratum": f.stratum, "entries": f.entries},
    )


_OUTSIDE = "Outside the registration period"

REFUSALS: dict[Refused, Explaining[Facts]] = {
    "no_draw": Explaining(
        404, "not-found", "Not found", lambda d, _f: Explained(f"no draw {d!r}")),
    "bad_stratum": Explaining(
        422, "validation", "Invalid request body",
        lambda _d, _f: Explained(
            "stratum: not a stratum of this draw",
            errors=[errors.FieldError(field="stratum", detail="not a stratum of this draw")],
        ),
    ),
    "not_open": Explaining(409, "registration-not-open", _OUTSIDE, lambda _d, f: Explained(
        f"registration has not opened yet; the period is {_period(f)}")),
    "closed": Explaining(409, "registration-closed", _OUTSIDE, lambda _d, f: Explained(
        f"registration has closed; the period is {_period(f)}")),
    "not_a_member": Explaining(
        403, "not-a-member", "Not a member of this stratum",
        lambda d, f: Explained(
            f"stratum {f.stratum!r} of draw {d!r} is restricted to its members: the identity "
            "token's groups or the member list ops loaded do not include this account",
            errors=[errors.FieldError(field="stratum", detail="restricted to its members")],
            context={"stratum": f.stratum},
        ),
    ),
    "no_entry": Explaining(404, "not-found", "Not found", _no_entry),
    "withdrawal_closed": Explaining(
        409, "registration-closed", "Registration closed",
        lambda _d, f: Explained(
            f"entries can be withdrawn until {wire.rfc3339(f.closes_us / US_PER_S)}"),
    ),
    "committed": Explaining(
        409, "draw-committed", "The draw is committed",
        lambda d, _f: Explained(
            f"draw {d!r} is committed: its rules are fixed and can no longer change"),
    ),
    "orphans": Explaining(
        409, "draw-stratum-has-entries", "A removed stratum has entries", _orphans),
}  # fmt: skip
check_complete(REFUSALS, Refused, "draw")


def problem(code: Refused, draw: str, facts: Facts = NO_FACTS) -> errors.Problem:
    """The problem a refusal of the draw becomes."""
    return REFUSALS[code].problem(draw, facts)
