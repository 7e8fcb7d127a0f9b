"""What the draw's scripts answer, typed, and the one table of the problems their refusals
become. Handlers decode, call the service, and turn a refusal into its problem here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from guichet import errors, wire
from guichet.units import US_PER_S

#: register.lua: 'again' is the same entry (idempotent), even after the close.
RegisterCode = Literal["created", "again", "unknown", "not_open", "closed", "bad_stratum"]
#: withdraw.lua: 'none' is no entry of this account, 'unknown' no such draw.
WithdrawCode = Literal["ok", "none", "closed", "unknown"]
PutScriptCode = Literal["ok", "committed", "orphans"]
#: put.lua's codes as the service answers them: its 'ok' is 'created' or 'replaced'.
PutCode = Literal["created", "replaced", "committed", "orphans"]
#: commit.lua: 'exists' carries the first commitment (never replaced).
CommitCode = Literal["ok", "exists", "closed", "unknown"]
#: Every refusal the draw's handlers answer: the keys of :data:`REFUSALS`. Named for what they
#: mean: a script code may mean two of them ('closed' to register or to withdraw).
Refused = Literal[
    "no_draw", "bad_stratum", "not_open", "closed", "no_entry", "withdrawal_closed",
    "committed", "orphans",
]  # fmt: skip


def code_of(raw: bytes, codes: Any, script: str) -> Any:
    """A script's code checked against its ``Literal`` (a code outside it is a bug: 500)."""
    code = raw.decode()
    if code not in get_args(codes):
        raise errors.Problem(500, "internal", "Unexpected answer", f"{script} answered {code!r}")
    return code


@dataclass(frozen=True)
class Facts:
    """What a refusal names: the registration period (µs), the stratum and its entries."""

    opens_us: int = 0
    closes_us: int = 0
    stratum: str = ""
    entries: int = 0


NO_FACTS = Facts()


@dataclass(frozen=True)
class Explained:
    """A refusal's detail for humans, its machine-readable context and offending fields."""

    detail: str
    context: dict[str, Any] | None = None
    errors: list[errors.FieldError] | None = None


@dataclass(frozen=True)
class Refusal:
    """A refusal's problem: status, type slug and title, and the detail built from the draw id
    and the script's facts."""

    status: int
    slug: str
    title: str
    explain: Callable[[str, Facts], Explained]


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

REFUSALS: dict[Refused, Refusal] = {
    "no_draw": Refusal(404, "not-found", "Not found", lambda d, _f: Explained(f"no draw {d!r}")),
    "bad_stratum": Refusal(
        422, "validation", "Invalid request body",
        lambda _d, _f: Explained(
            "stratum: not a stratum of this draw",
            errors=[errors.FieldError(field="stratum", detail="not a stratum of this draw")],
        ),
    ),
    "not_open": Refusal(409, "registration-not-open", _OUTSIDE, lambda _d, f: Explained(
        f"registration has not opened yet; the period is {_period(f)}")),
    "closed": Refusal(409, "registration-closed", _OUTSIDE, lambda _d, f: Explained(
        f"registration has closed; the period is {_period(f)}")),
    "no_entry": Refusal(404, "not-found", "Not found", _no_entry),
    "withdrawal_closed": Refusal(
        409, "registration-closed", "Registration closed",
        lambda _d, f: Explained(
            f"entries can be withdrawn until {wire.rfc3339(f.closes_us / US_PER_S)}"),
    ),
    "committed": Refusal(
        409, "draw-committed", "The draw is committed",
        lambda d, _f: Explained(
            f"draw {d!r} is committed: its rules are fixed and can no longer change"),
    ),
    "orphans": Refusal(409, "draw-stratum-has-entries", "A removed stratum has entries", _orphans),
}  # fmt: skip
if missing := set(get_args(Refused)) - set(REFUSALS):  # mypy checks the keys; this, that all are
    raise AssertionError(f"draw refusals without a problem: {sorted(missing)}")


def problem(code: Refused, draw: str, facts: Facts = NO_FACTS) -> errors.Problem:
    """The problem a refusal of the draw becomes."""
    r = REFUSALS[code]
    e = r.explain(draw, facts)
    return errors.Problem(r.status, r.slug, r.title, e.detail, errors=e.errors, context=e.context)
