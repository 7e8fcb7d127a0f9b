"""The protected site ends an admitted session (issue 18, item 3): ``POST
/v1/rooms/{room}/revoke`` with the site's own admin credential (scope :data:`SCOPE_REVOKE`,
which grants nothing else and which ``rooms:write`` does not imply).

The site names the session by the admission token it holds (verified with the room keyring for
the room's audience; an expired one is accepted, the site may revoke late) or by the account.
One script (revoke.lua) frees the slot, ends the session, appends it to the room's ended
stream (every worker's guard refuses its tokens from its next tick) and writes the act's
audit record. Idempotent: a replay answers ``already: true`` and changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated, Literal, NamedTuple

from aiohttp import web
from msgspec import Meta

from guichet import auth, auth_jws, errors, metrics, openapi, webio, wire
from guichet.audit import acts
from guichet.audit.act import Act
from guichet.audit.web import request_act
from guichet.refusals import code_of
from guichet.room import model
from guichet.room.guard import MAX_TOKEN_BYTES
from guichet.room.service import ENDED_RETENTION_S, Rooms, Runtime, UnknownRoom
from guichet.room.tickets import verify_admission_late
from guichet.state import KEYRING, ROOMS, SETTINGS, admin_of
from guichet.store.scripts import LuaScript
from guichet.units import US_PER_S

log = logging.getLogger("guichet.room")

SCOPE_REVOKE = "rooms:revoke"
REVOKE = LuaScript("guichet.room", "revoke.lua")
SCRIPTS = (REVOKE,)

Reason = Literal["finished", "misbehaved"]
REASONS: tuple[Reason, ...] = ("finished", "misbehaved")
RevokeCode = Literal["ok", "again", "none"]

AdmissionToken = Annotated[
    str,
    Meta(max_length=MAX_TOKEN_BYTES, pattern=wire.JWS,
         description="the admission token the site holds (an expired one too)"),
]  # fmt: skip
AccountId = Annotated[
    str,
    Meta(min_length=1, max_length=auth.MAX_SUBJECT_LEN, pattern=wire.whole(r"[^\x00-\x1f\x7f]+"),
         description="the account (`sub` of its tokens)"),
]  # fmt: skip


class Revoke(wire.Base, kw_only=True):
    """Which admitted session to end (exactly one of ``token`` and ``account``), and why."""

    token: AdmissionToken | None = None
    account: AccountId | None = None
    reason: Reason

    def __post_init__(self) -> None:
        if (self.token is None) == (self.account is None):
            raise ValueError("`token`: give exactly one of `token` and `account`")


class Revoked(wire.Reply, kw_only=True):
    """The session is over: ``freed`` when this call freed its slot, ``already`` when it had
    ended before (left, idle, revoked: nothing changed)."""

    room: str
    state: Literal["revoked"]
    freed: bool
    revoked_at: str
    already: bool


class Revoking(NamedTuple):
    """revoke.lua: whether a slot was freed, and when the session ended (UNIX s)."""

    code: RevokeCode
    freed: bool
    ended_at: float


async def revoke_session(
    rooms: Rooms, rt: Runtime, account: str, reason: Reason, act: Act
) -> Revoking:
    """End ``account``'s session in ``rt`` (see revoke.lua for the codes); a new revocation is
    counted and this worker's snapshot (and guard) takes it at once."""
    k = rt.keys
    ks, args = acts.keys_args(
        act, [k.sessions, k.active, k.ended], [account, reason, ENDED_RETENTION_S * 1000]
    )
    code, freed, ended_us = await rooms.store.scripts(REVOKE, ks, args)
    result = Revoking(
        code_of(code, RevokeCode, "revoke"), bool(int(freed)), int(ended_us) / US_PER_S
    )
    if result.code == "ok":
        metrics.ROOM_REVOCATIONS.labels(rt.id, reason).inc()
        log.info("session revoked", extra={"room": rt.id, "reason": reason, "freed": result.freed})
        with contextlib.suppress(Exception):  # the pacer's next tick does it otherwise
            await rooms.tick(rt)
    return result


def _account_of_token(request: web.Request, rt: Runtime, token: str) -> str:
    """The account (``sub``) of an admission token of room ``rt``; 403 for another room's,
    422 naming ``token`` for one that does not verify."""
    keyring, issuer = request.app[KEYRING], request.app[SETTINGS].rooms.admission_issuer
    try:
        claims = verify_admission_late(keyring, token, audience=rt.spec.audience, issuer=issuer)
    except auth.Refused as exc:
        if _other_rooms(request, token, rt):
            raise errors.forbidden("the admission token is for another room") from None
        field = errors.FieldError(field="token", detail=exc.detail)
        raise errors.invalid_body([field]) from None
    if claims["room"] != rt.id:
        raise errors.forbidden("the admission token is for another room")
    return str(claims["sub"])


def _other_rooms(request: web.Request, token: str, rt: Runtime) -> bool:
    """Whether ``token`` is a genuine admission token of another room with another audience
    (the audience it names is only read to choose what to verify it for)."""
    try:
        aud = auth_jws.claims_of(auth_jws.parse(token)).get("aud")
    except auth_jws.Refused:
        return False
    if not isinstance(aud, str) or aud == rt.spec.audience:
        return False
    keyring, issuer = request.app[KEYRING], request.app[SETTINGS].rooms.admission_issuer
    try:
        claims = verify_admission_late(keyring, token, audience=aud, issuer=issuer)
    except auth.Refused:
        return False
    return bool(claims["room"] != rt.id)


def _site_of(request: web.Request, room: str) -> auth.Admin:
    """The caller, with the scope of this room (``rooms:revoke:<room>``: a site's credential
    that ends sessions of its own room only) or of every room (``rooms:revoke``)."""
    return admin_of(request, (f"{SCOPE_REVOKE}:{room}", SCOPE_REVOKE))


@openapi.endpoint(
    "The protected site ends an admitted session (the visitor finished or misbehaved), named "
    "by its admission token (an expired one too) or its account: the slot frees at once, the "
    "sale's holds and the draw's entries refuse its token from every worker's next tick, the "
    "heartbeat answers 409. Idempotent (`already`). 403 for another room's token.",
    request=Revoke,
    response=Revoked,
    auth="admin",
    scope=SCOPE_REVOKE,
    errors=(400, 403, 404, 422),
    tags=("room",),
)
async def revoke(request: web.Request) -> web.Response:
    room = request.match_info["room"]
    admin = _site_of(request, room)
    rooms = request.app[ROOMS]
    if room not in rooms and not model.valid_room_id(room):
        raise errors.not_found(f"no room {room[:60]!r}")
    body = await webio.read_json(request, Revoke)
    try:
        rt = await rooms.runtime(room)
    except UnknownRoom:
        raise errors.not_found(f"no room {room!r}") from None
    if body.token is not None:
        account = _account_of_token(request, rt, body.token)
    else:
        assert body.account is not None
        account = body.account
    act = await request_act(request, admin.subject, "room.revoke", f"room:{room}")
    code, freed, ended_at = await revoke_session(rooms, rt, account, body.reason, act)
    if code == "none":
        raise errors.not_found(f"this account has no session in room {room!r}")
    return webio.respond(Revoked(
        room=room, state="revoked", freed=freed, revoked_at=wire.rfc3339(ended_at),
        already=code == "again",
    ))  # fmt: skip
