"""What the shop's scripts answer, typed, and the one table of the problems their refusals
become. Handlers decode, call the service, and turn a refusal code into its problem here."""

from __future__ import annotations

from typing import Literal

import msgspec

from guichet import errors, wire
from guichet.draw.model import WindowState
from guichet.refusals import Explained, Explaining, check_complete
from guichet.shop.model import sale_window
from guichet.units import US_PER_S

#: hold.lua's refusals (kept under the idempotency key, replayed for the same request).
HoldRefusal = Literal[
    "no_sale", "idempotency_mismatch", "phase", "period", "window", "max_tickets", "max_packs",
    "max_per_session", "unknown_item", "stock",
]  # fmt: skip
QuotaRule = Literal["max_tickets", "max_packs", "max_per_session"]
#: hold.lua: 'stale' (the rules changed since the caller read them) is retried, not refused.
HoldCode = Literal["ok", "stale", HoldRefusal]
ConfirmCode = Literal["ok", "again", "not_found", "expired", "released"]
#: release.lua: a hold already released or expired is answered as it is (idempotent).
ReleaseCode = Literal["ok", "not_found", "confirmed", "expired", "released"]
LoadCode = Literal["ok", "below_taken"]
#: Every refusal of the shop's scripts: the keys of :data:`REFUSALS`.
Refused = Literal[HoldRefusal, "not_found", "expired", "released", "confirmed", "below_taken"]


class Facts(msgspec.Struct, frozen=True, kw_only=True):
    """What a refusal names (hold.lua's fields; the item alone for load.lua's)."""

    item: str | None = None
    have: int = 0
    limit: int = 0
    available: int = 0
    phase: str = ""
    state: WindowState = "none"
    starts_us: int = 0
    ends_us: int = 0
    opens_us: int | None = None  # the sale's purchase period (None: unbounded on that side)
    closes_us: int | None = None


NO_FACTS = Facts()


class HoldAnswer(Facts, frozen=True, kw_only=True):
    """hold.lua's JSON answer: 'ok' with the hold id and expiry (and, when replayed, the hold's
    record as stored now), 'stale' with the rules' version, or a refusal with its facts."""

    code: HoldCode
    hold: str = ""
    expires_us: int = 0
    version: int = 0
    record: str | None = None


#: µs times come as strings (cjson would round large numbers): strict=False converts them.
_HOLD_ANSWER = msgspec.json.Decoder(HoldAnswer, strict=False)


def decode_hold(raw: bytes) -> HoldAnswer:
    try:
        return _HOLD_ANSWER.decode(raw)
    except msgspec.ValidationError:  # a script answering what this module does not know
        code = msgspec.json.decode(raw).get("code")
        raise errors.Problem(
            500, "internal", "Unexpected answer", f"hold answered {code!r}"
        ) from None


def _field(field: str, detail: str) -> Explained:
    """A refusal of one field of the body (as :func:`errors.invalid_body` words it)."""
    return Explained(f"{field}: {detail}", errors=[errors.FieldError(field=field, detail=detail)])


def _window(_sale: str, f: Facts) -> Explained:
    window = sale_window(f.state, f.starts_us, f.ends_us)
    detail = {
        "none": "this account has no purchase window for this sale",
        "before": f"the purchase window opens at {window.starts_at}",
        "after": f"the purchase window closed at {window.ends_at}",
    }[f.state]
    return Explained(detail, context={"window": msgspec.to_builtins(window)})


def _period(_sale: str, f: Facts) -> Explained:
    period = {
        "opens_at": None if f.opens_us is None else wire.rfc3339(f.opens_us / US_PER_S),
        "closes_at": None if f.closes_us is None else wire.rfc3339(f.closes_us / US_PER_S),
    }
    return Explained(
        f"this sale takes holds from {period['opens_at'] or '…'} to "
        f"{period['closes_at'] or '…'} (its purchase period)",
        context={"period": period},
    )


def _quota(rule: QuotaRule) -> Explaining[Facts]:
    def explain(_sale: str, f: Facts) -> Explained:
        what = {"max_tickets": "tickets per account", "max_packs": "packs per account",
                "max_per_session": f"tickets for session {f.item}"}[rule]  # fmt: skip
        return Explained(
            f"at most {f.limit} {what}; {f.have} held or bought already",
            context={"rule": rule, "limit": f.limit, "have": f.have,
                     **({"item": f.item} if f.item is not None else {})},
        )  # fmt: skip

    return Explaining(409, "quota-exceeded", "Quota exceeded", explain)


def _gone(code: Literal["expired", "released"]) -> Explaining[Facts]:
    return Explaining(
        409, f"hold-{code}", f"Hold {code}",
        lambda _s, _f: Explained(f"this hold was {code}; its seats went back on sale"),
    )  # fmt: skip


_VALIDATION = (422, "validation", "Invalid request body")

REFUSALS: dict[Refused, Explaining[Facts]] = {
    "no_sale": Explaining(
        404, "not-found", "Not found", lambda s, _f: Explained(f"no sale {s!r}")),
    "idempotency_mismatch": Explaining(
        422, "idempotency-key-reused", "Idempotency key reused",
        lambda _s, _f: Explained(
            "this Idempotency-Key was used with another request; use a new key",
            errors=[errors.FieldError(field="Idempotency-Key", detail="used for another body")],
        ),
    ),
    "period": Explaining(403, "outside-sale-period", "Outside the sale's purchase period",
                         _period),
    "window": Explaining(403, "window-closed", "Outside the purchase window", _window),
    "phase": Explaining(*_VALIDATION, lambda _s, f: _field(
        "packs" if f.phase == "packs" else "items", f"this sale is in its {f.phase} phase")),
    "unknown_item": Explaining(
        *_VALIDATION, lambda _s, f: _field("items", f"no item {f.item} in this sale")),
    "stock": Explaining(
        409, "sold-out", "Not enough seats",
        lambda _s, f: Explained(f"{f.available} seats left for {f.item}",
                                context={"item": f.item, "available": f.available}),
    ),
    "max_tickets": _quota("max_tickets"),
    "max_packs": _quota("max_packs"),
    "max_per_session": _quota("max_per_session"),
    "not_found": Explaining(
        404, "not-found", "Not found", lambda _s, _f: Explained("no such hold")),
    "expired": _gone("expired"),
    "released": _gone("released"),
    "confirmed": Explaining(409, "hold-confirmed", "Already bought",
                         lambda _s, _f: Explained("a confirmed hold is a purchase")),
    "below_taken": Explaining(
        409, "below-taken", "Fewer seats than taken",
        lambda _s, f: Explained(
            f"{f.item}: the new seat count is below the seats held and sold already"),
    ),
}  # fmt: skip
check_complete(REFUSALS, Refused, "shop")


def problem(code: Refused, sale: str, facts: Facts = NO_FACTS) -> errors.Problem:
    """The problem a refusal of the shop's scripts becomes."""
    return REFUSALS[code].problem(sale, facts)
