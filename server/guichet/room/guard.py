"""The room guards what it meters: holds in a sale and entries in a draw linked to a waiting
room (``sale`` / ``draw`` in the room's spec) need, besides the account bearer, that room's
admission token.

The token comes in the :data:`ADMISSION_HEADER` header or the room's admission cookie (set by
``POST /v1/rooms/{room}/admit`` and the heartbeat). It must be signed by the room keyring, for
the room's audience and id, for the bearer's account, and not expired. A token is verified
once per worker and then remembered (:class:`Guard`): the hot path is a dict lookup and a few
comparisons, no signature check. A session that ended (left, or reaped after its idle
timeout) is refused from the worker's next tick on: every tick reads the room's *ended* stream
into :attr:`Runtime.ended <guichet.room.service.Runtime.ended>` (our design: no extra round
trip per hold, and a hold script need not reach across to the room's hash slot).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from guichet import auth, errors, metrics
from guichet.cache import Bounded
from guichet.room.service import Runtime
from guichet.room.tickets import verify_admission
from guichet.signing import KeySource

ADMISSION_HEADER = "X-Admission-Token"
ADMISSION_COOKIE_PREFIX = "guichet_admission_"
MAX_TOKEN_BYTES = 2048

Reason = Literal[
    "missing", "forged", "expired", "malformed", "other_room", "wrong_account", "ended"
]  # fmt: skip
REASONS: tuple[Reason, ...] = (
    "missing", "forged", "expired", "malformed", "other_room", "wrong_account", "ended",
)  # fmt: skip

#: A failed verification's reason (auth.Refused) as counted here.
_REASON_OF: dict[str, Reason] = {"forged": "forged", "expired": "expired"}


@dataclass(frozen=True, slots=True)
class Admitted:
    """A verified admission token's claims (cached per worker)."""

    room: str
    audience: str  # the audience it was verified for
    account: str
    sid: str
    expires_at: float


class Guard:
    """Checks admission tokens against a worker's rooms; remembers the ones it verified."""

    def __init__(self, keys: KeySource, issuer: str, cache_size: int) -> None:
        self._keys = keys
        self._issuer = issuer
        self._verified: Bounded[str, Admitted] = Bounded(cache_size)
        self._refused = {reason: metrics.ROOM_GUARD_REFUSALS.labels(reason) for reason in REASONS}
        self._passed = metrics.ROOM_GUARD_CHECKS.labels("cached")
        self._checked = metrics.ROOM_GUARD_CHECKS.labels("verified")

    def check(
        self,
        linked: list[Runtime],
        kind: Literal["sale", "draw"],
        target: str,
        account: str,
        header: str | None,
        cookies: dict[str, str],
        now: float | None = None,
    ) -> None:
        """Nothing if ``target`` has no ``linked`` room or the token admits ``account``
        through one of them; else a 403 ``admission-required`` problem naming the room."""
        if not linked:
            return
        raw = header or next(
            (c for rt in linked if (c := cookies.get(ADMISSION_COOKIE_PREFIX + rt.id))), None
        )
        if not raw:
            raise self._refuse("missing", linked[0], kind, target, "no admission token sent")
        admitted = self._verified.get(raw)
        if admitted is None:
            admitted = self._verify(raw, linked, kind, target)
        else:
            self._passed.inc()
        rt = next((rt for rt in linked if rt.id == admitted.room), None)
        if rt is None or admitted.audience != rt.spec.audience:
            detail = f"the admission token is for room {admitted.room!r}"
            raise self._refuse("other_room", linked[0], kind, target, detail)
        if admitted.account != account:
            detail = "the admission token belongs to another account"
            raise self._refuse("wrong_account", rt, kind, target, detail)
        if admitted.expires_at <= (time.time() if now is None else now):
            raise self._refuse("expired", rt, kind, target, "the admission token has expired")
        if account in rt.ended:
            detail = "the admitted session has ended (left or idle)"
            raise self._refuse("ended", rt, kind, target, detail)

    def _verify(self, raw: str, linked: list[Runtime], kind: str, target: str) -> Admitted:
        if len(raw) > MAX_TOKEN_BYTES:
            raise self._refuse("malformed", linked[0], kind, target, "admission token too long")
        refusal: auth.Refused | None = None
        for audience in dict.fromkeys(rt.spec.audience for rt in linked):
            try:
                claims = verify_admission(self._keys, raw, audience=audience, issuer=self._issuer)
            except auth.Refused as exc:
                refusal = exc
                continue
            self._checked.inc()
            admitted = Admitted(
                str(claims["room"]), audience, str(claims["sub"]), str(claims["sid"]),
                float(claims["exp"]),
            )  # fmt: skip
            self._verified.put(raw, admitted)
            return admitted
        assert refusal is not None
        # A token for another room's audience does not verify here: "forged" too.
        reason = _REASON_OF.get(refusal.reason, "malformed")
        raise self._refuse(reason, linked[0], kind, target, refusal.detail)

    def _refuse(
        self, reason: Reason, rt: Runtime, kind: str, target: str, detail: str
    ) -> errors.Problem:
        self._refused[reason].inc()
        page = f"/rooms/{rt.id}"
        what = "holds in sale" if kind == "sale" else "entries in draw"
        return errors.Problem(
            403, "admission-required", "Admission required",
            f"{what} {target!r} need an admission by waiting room {rt.id!r} (its page: "
            f"{page}); {detail}",
            context={"room": rt.id, "page": page, "reason": reason},
        )  # fmt: skip


def require_admission(
    request: web.Request, account: str, *, sale: str | None = None, draw: str | None = None
) -> None:
    """The guard of a hold (``sale``) or an entry (``draw``): see :meth:`Guard.check`."""
    from guichet.state import GUARD, ROOMS  # state imports the services: import late

    rooms, guard = request.app.get(ROOMS), request.app.get(GUARD)
    if rooms is None or guard is None:
        return
    kind: Literal["sale", "draw"] = "sale" if sale is not None else "draw"
    target = sale if sale is not None else draw
    assert target is not None
    linked = rooms.linked(kind, target)
    if linked:
        cookies = dict(request.cookies)
        guard.check(linked, kind, target, account, request.headers.get(ADMISSION_HEADER), cookies)
