"""HTTP routes of the waiting room: public (join, status, events, admit, leave, heartbeat,
JWKS) and admin (create, change, pause, resume, stats, stock signal)."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from guichet import auth, errors, metrics, openapi, refusals, streams, webio, wire
from guichet.audit.web import request_act
from guichet.config import RoomsConfig
from guichet.room import door, model, revocation
from guichet.room.challenge import ChallengeProblemBody, Challenger, JoinProof
from guichet.room.guard import ADMISSION_COOKIE_PREFIX, Guard
from guichet.room.outcomes import REFUSALS, REJECTING_DETAIL, Refused
from guichet.room.pacer import Pacer
from guichet.room.progress import BadMark, Mark, Marks
from guichet.room.service import Rooms, Runtime, UnknownRoom, spec_fields
from guichet.room.tickets import Ticket, TicketSigner, ticket_secret, verify_admission
from guichet.signing import Keyring
from guichet.state import (
    CHALLENGER,
    ETICKET_KEYRING,
    GUARD,
    KEYRING,
    MARKS,
    ROOMS,
    SETTINGS,
    SIGNER,
    SLOTS,
    STORE,
    account_of,
    admin_of,
)
from guichet.units import US_PER_S

log = logging.getLogger("guichet.room")

SCOPE_READ = "rooms:read"
SCOPE_WRITE = "rooms:write"
TICKET_HEADER = "X-Queue-Ticket"
SEEN_HEADER = "X-Queue-Seen"
_TICKET = openapi.Header(
    TICKET_HEADER,
    "The signed queue ticket from POST /v1/rooms/{room}/join (or the `guichet_ticket_{room}` "
    "cookie it sets).",
    schema={"type": "string", "maxLength": 2048, "pattern": wire.JWS},
)
_SEEN = openapi.Header(
    SEEN_HEADER,
    "The `seen` of the last status this client was shown: the answer is never behind it.",
    schema={"type": "string", "maxLength": 64},
)
_LAST_EVENT_ID = openapi.Header(
    "Last-Event-ID",
    "The id (a `seen`) of the last event received, on a reconnect.",
    schema={"type": "string", "maxLength": 64},
)
COOKIE_PREFIX = "guichet_ticket_"

_REJECT = {reason: metrics.ROOM_REJECTIONS.labels(reason) for reason in (
    "rate_limit_ip", "rate_limit_account", "forged", "expired", "other_room", "malformed",
    "missing", "not_ready", "full", "used", "closed", "mismatch", "wrong_account", "rejecting",
)}  # fmt: skip


#: The rejection metric's reason for a refusal code (codes absent here are not counted).
_REASON: dict[Refused, str] = {
    "limited_ip": "rate_limit_ip", "limited_account": "rate_limit_account", "closed": "closed",
    "mismatch": "mismatch", "not_ready": "not_ready", "expired": "expired", "used": "used",
    "full": "full", "rejecting": "rejecting",
}  # fmt: skip
_INSUFFICIENT_SCOPE = {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}


def _reject(reason: str, problem: errors.Problem) -> errors.Problem:
    _REJECT[reason].inc()
    return problem


def _refused(code: Refused, detail: str, retry_after_s: int | None = None) -> errors.Problem:
    """The problem answering a script's refusal ``code`` (outcomes.REFUSALS), counted."""
    refusal = REFUSALS[code]
    if (reason := _REASON.get(code)) is not None:
        _REJECT[reason].inc()
    headers = _INSUFFICIENT_SCOPE if refusal.status == 403 else None  # as errors.forbidden
    return refusals.problem(refusal, detail, retry_after_s=retry_after_s, headers=headers)


def _room_id(request: web.Request) -> str:
    room = request.match_info["room"]
    if room not in request.app[ROOMS] and not model.valid_room_id(room):
        raise errors.not_found(f"no room {room[:60]!r}")
    return room


async def _runtime(request: web.Request, room: str) -> Runtime:
    try:
        return await request.app[ROOMS].runtime(room)
    except UnknownRoom:
        raise errors.not_found(f"no room {room!r}") from None


def _ticket(request: web.Request, room: str, *, query: bool = False) -> Ticket:
    raw = request.headers.get(TICKET_HEADER) or request.cookies.get(COOKIE_PREFIX + room)
    if not raw and query:
        raw = request.query.get("ticket")
    if not raw:
        raise _reject(
            "missing",
            errors.unauthorized(
                f"send the queue ticket in the {TICKET_HEADER} header or the "
                f"{COOKIE_PREFIX}{room} cookie",
                error="invalid_request",
            ),
        )
    try:
        return request.app[SIGNER].verify(raw, room)
    except auth.Refused as exc:
        problem = (
            errors.forbidden(exc.detail)
            if exc.reason == "other_room"
            else (errors.unauthorized(f"{TICKET_HEADER}: {exc.detail}"))
        )
        raise _reject(exc.reason, problem) from None


def _held_ticket(request: web.Request, room: str, account: str) -> Ticket | None:
    """The queue ticket of ``account`` for ``room`` the request shows (header or cookie), if
    it verifies; None otherwise (never a refusal: a join needs no ticket)."""
    raw = request.headers.get(TICKET_HEADER) or request.cookies.get(COOKIE_PREFIX + room)
    if not raw:
        return None
    try:
        ticket = request.app[SIGNER].verify(raw, room)
    except auth.Refused:
        return None
    return ticket if ticket.account == account else None


def _seen(request: web.Request, room: str, *, stream: bool = False) -> Mark | None:
    """What the client was last shown (``seen`` of its previous status), if it says."""
    source, raw = SEEN_HEADER, request.headers.get(SEEN_HEADER)
    if not raw and stream:
        source, raw = "Last-Event-ID", request.headers.get("Last-Event-ID")
        if not raw:
            source, raw = "seen", request.query.get("seen")
    if not raw:
        return None
    try:
        return request.app[MARKS].verify(room, raw)
    except BadMark as exc:
        raise errors.Problem(
            400, "malformed", "Malformed request", f"{source}: {exc}",
            errors=[errors.FieldError(field=source, detail=str(exc))],
        ) from None  # fmt: skip


def _account_ticket(request: web.Request, room: str) -> tuple[auth.Account, Ticket]:
    account = account_of(request)
    ticket = _ticket(request, room)
    if ticket.account != account.id:
        raise _reject(
            "wrong_account", errors.forbidden("this queue ticket belongs to another account")
        )
    return account, ticket


def _client_ip(request: web.Request, cfg: RoomsConfig) -> str:
    return streams.client_address(request, cfg)


def _set_admission_cookie(
    response: web.StreamResponse, room: str, token: str, token_exp: int, cfg: RoomsConfig
) -> None:
    """The admission token as the room's cookie: what a linked sale's holds and a linked
    draw's entries accept when the client sends no header (guard.py)."""
    secure = "; Secure" if cfg.cookie_secure else ""
    max_age = max(0, token_exp - int(time.time()))
    response.headers.add(
        "Set-Cookie",
        f"{ADMISSION_COOKIE_PREFIX}{room}={token}; HttpOnly; Max-Age={max_age}; Path=/; "
        f"SameSite=Lax{secure}",
    )


def _set_cookie(
    response: web.StreamResponse, room: str, ticket: str, cfg: RoomsConfig, request: web.Request
) -> None:
    # Written directly: the room id and the token (base64url and dots) need no quoting, and
    # http.cookies costs ~15 µs a call on the join path.
    secure = "; Secure" if cfg.cookie_secure else ""
    response.headers.add(
        "Set-Cookie",
        f"{COOKIE_PREFIX}{room}={ticket}; HttpOnly; Max-Age=604800; Path=/; SameSite=Lax{secure}",
    )


# --- public ----------------------------------------------------------------------------------


@openapi.endpoint(
    "Join the room's queue: one place per account; the signed ticket comes back (and as a "
    "cookie). 201 for a new place, 200 with the same ticket on a repeat. A room with "
    "`challenge_bits` > 0 wants the body: a solved proof-of-work challenge (403 "
    "`challenge-required` hands one out).",
    response=model.Joined,
    request=JoinProof,
    request_optional=True,
    problems=((403, ChallengeProblemBody),),
    status=201,
    also_status=(200,),
    auth="account",
    errors=(401, 404, 409, 429),
    tags=("room",),
)
async def join(request: web.Request) -> web.Response:
    room = _room_id(request)
    account = account_of(request)
    rt = await _runtime(request, room)
    # A holder's repeat join (a page reloaded) that sends no proof gets its ticket back
    # without a new puzzle: the ticket it shows was signed for its first, proven join
    # (join.lua still refuses a new place without a proof while the room asks for one).
    door_on = rt.spec.challenge_bits > 0
    held = door_on and _held_ticket(request, room, account.id) is not None
    if door_on and not held and rt.spec.mode == "reject":
        raise _refused("rejecting", REJECTING_DETAIL)  # no puzzle solved for nothing
    proof = await door.proof_of(request) if door_on else None  # else the body is not read
    challenge = None
    if door_on and not (held and proof is None):  # a proof sent is checked, held or not
        challenge = door.check(request, rt, account.id, proof)
    cfg = request.app[SETTINGS].rooms
    code, tid, retry_s = await request.app[ROOMS].join(
        rt, account.id, _client_ip(request, cfg), challenge
    )
    if code == "replayed":
        raise door.refused(request, rt, account.id, code, "this challenge was already used")
    if code == "unproven":  # this worker's spec is behind the room's: the door is on
        bits = max(1, round(retry_s * US_PER_S))  # join.lua's reply carries the room's bits
        raise door.refused(request, rt, account.id, "missing", "this room asks for a proof "
                           "of work at join", bits=bits)  # fmt: skip
    if challenge is not None and code in ("ok", "again"):
        door.solved(rt, proof)
    if code in ("limited_ip", "limited_account"):
        who = "address" if code == "limited_ip" else "account"
        detail = f"too many joins from this {who}; retry later"
        raise _refused(code, detail, math.ceil(retry_s) or 1)
    if code == "closed":
        raise _refused(code, f"the room closed at {rt.window[1]}")
    if code == "unknown":
        raise _refused(code, f"no room {room!r}")
    if code == "rejecting":
        raise _refused(code, REJECTING_DETAIL)
    created = code == "ok"
    if created:
        metrics.ROOM_JOINS.labels(room, "prequeue" if tid.startswith("p:") else "open").inc()
    signer = request.app[SIGNER]
    token = signer.sign(room, account.id, tid, rt.spec.closes_at.timestamp())
    body = rt.status(signer.verify(token, room), joined=(token, created))
    response = webio.respond(body, status=201 if created else 200)
    _set_cookie(response, room, token, cfg, request)
    return response


@openapi.endpoint(
    f"Where my ticket stands (ticket in the {TICKET_HEADER} header or the cookie). Answered "
    "from this worker's snapshot of the room: no Redis round trip. Send the last answer's "
    f"`seen` back in {SEEN_HEADER}: the answer is never behind it (400 if it was not issued "
    "for this room).",
    response=model.Status,
    errors=(400, 401, 403, 404),
    headers=(_TICKET, _SEEN),
    tags=("room",),
)
async def status(request: web.Request) -> web.Response:
    room = _room_id(request)
    rt = request.app[ROOMS].get(room)
    if rt is None or rt.counters is None:
        rt = await _runtime(request, room)
    ticket = _ticket(request, room)
    return webio.respond(rt.status(ticket, seen=_seen(request, room)))


@openapi.endpoint(
    "The same status as a Server-Sent Events stream (`event: status`), sent when it changes; "
    "ticket from the cookie, the header or `?ticket=`. Each event's id is its `seen`: a "
    f"reconnect's Last-Event-ID (or {SEEN_HEADER}, or `?seen=`) keeps it from going back.",
    content_type="text/event-stream",
    errors=(400, 401, 403, 404, 429),
    headers=(_TICKET, _SEEN, _LAST_EVENT_ID),
    query=(("ticket", _TICKET.schema or {}), ("seen", _SEEN.schema or {})),
    tags=("room",),
)
async def events(request: web.Request) -> web.StreamResponse:
    room = _room_id(request)
    rt = await _runtime(request, room)
    ticket = _ticket(request, room, query=True)
    seen = _seen(request, room, stream=True)
    cfg = request.app[SETTINGS].rooms
    slot = request.app[SLOTS].hold(
        "/status", streams.client_address(request, cfg), f"{room}/{ticket.tid}"
    )
    with slot:
        metrics.ROOM_SSE_CLIENTS.inc()
        try:
            headers = {"Cache-Control": "no-store"}
            stream: EventSourceResponse
            async with sse_response(request, headers=headers, ping_interval=15) as stream:
                async for payload, mark in _changes(request.app[ROOMS], rt, ticket, seen, request):
                    await stream.send(payload, id=mark, event="status")
        finally:
            metrics.ROOM_SSE_CLIENTS.dec()
    return stream


_NOT_ON_RECORD = "this ticket is not on record for the room"
_FINAL_STATES = ("admitted", "expired", "closed", "sold_out")


async def _changes(
    rooms: Rooms, rt: Runtime, ticket: Ticket, seen: Mark | None, request: web.Request
) -> AsyncIterator[tuple[str, str | None]]:
    """The ticket's status (and its ``seen``, the event id) whenever it changes, at most once
    a second, never behind what the client was shown; ends when final or when the client has
    gone (checked at every snapshot, so a quiet stream is freed too)."""
    last = ""
    while True:
        if request.transport is None or request.transport.is_closing():
            return
        current = rooms.get(rt.id) or rt
        st = current.status(ticket, seen=seen)
        if (c := current.counters) is not None:
            seen = Mark(max(c.serving, seen.serving if seen else 0),
                        max(c.floor, seen.floor if seen else 0))  # fmt: skip
        payload = wire.encode(st).decode()
        if payload != last:
            yield payload, st.seen
            last = payload
        if st.state in _FINAL_STATES:
            return
        started = time.monotonic()
        await current.updated.wait()
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


@openapi.endpoint(
    "Exchange a ready ticket for an admission token (EdDSA JWT for the protected site). "
    "Idempotent: asking again returns the same session.",
    response=model.Admission,
    auth="account",
    errors=(401, 403, 404, 409),
    headers=(_TICKET,),
    tags=("room",),
)
async def admit(request: web.Request) -> web.Response:
    room = _room_id(request)
    rt = await _runtime(request, room)
    account, ticket = _account_ticket(request, room)
    if ticket.admitted_until is not None:
        ticket = Ticket(ticket.room, ticket.account, ticket.tid, ticket.expires_at)
    number = rt.number_of(ticket)
    if number is None:
        raise _refused("not_ready", "the room has not opened yet", retry_after_s=1)
    code, admitted_at, expires_at = await request.app[ROOMS].admit(rt, ticket, number)
    if code == "not_ready":
        wait = rt.status(ticket).eta_s or 1
        raise _refused(code, f"number {number} has not been called yet", min(wait, 30))
    if code == "full":
        raise _refused(code, "every active place is taken; retry shortly", retry_after_s=1)
    if code == "expired":
        grace = request.app[SETTINGS].rooms.ready_grace_s
        raise _refused(code, f"number {number} was called more than {grace} s ago and lapsed")
    if code == "used":
        raise _refused(code, "this ticket's session has ended or was left")
    if code == "mismatch":
        raise _refused(code, _NOT_ON_RECORD)
    if code == "unknown":
        raise _refused(code, f"no room {room!r}")
    if code == "rejecting":
        raise _refused(code, REJECTING_DETAIL)
    if code == "ok":
        metrics.ROOM_ADMITTED.labels(room).inc()
        metrics.ROOM_QUEUE_TIME.labels(room).observe(max(0.0, admitted_at - ticket.joined_at))
    cfg = request.app[SETTINGS].rooms
    token, token_exp = _admission_token(request, rt, account.id, f"{room}:{number}", expires_at)
    new_ticket = request.app[SIGNER].sign(
        room, account.id, ticket.tid, rt.spec.closes_at.timestamp(), admitted_until=expires_at
    )
    separator = "&" if "?" in rt.spec.target_url else "?"
    body = model.Admission(
        room=room,
        token=token,
        token_expires_at=wire.rfc3339(token_exp),
        session_expires_at=wire.rfc3339(expires_at),
        redirect_url=f"{rt.spec.target_url}{separator}guichet_token={token}",
        ticket=new_ticket,
    )
    response = webio.respond(body)
    _set_cookie(response, room, new_ticket, cfg, request)
    _set_admission_cookie(response, room, token, token_exp, cfg)
    return response


def _admission_token(
    request: web.Request, rt: Runtime, account: str, sid: str, session_expires_at: float
) -> tuple[str, int]:
    """An EdDSA admission token for the protected site, never outliving the session."""
    now = time.time()
    token_exp = int(min(session_expires_at, now + rt.spec.token_ttl_s))
    token = request.app[KEYRING].sign({
        "iss": request.app[SETTINGS].rooms.admission_issuer,
        "aud": rt.spec.audience,
        "sub": account,
        "room": rt.id,
        "sid": sid,
        "iat": int(now),
        "nbf": int(now) - 1,
        "exp": token_exp,
        "jti": secrets.token_urlsafe(12),
    })  # fmt: skip
    return token, token_exp


@openapi.endpoint(
    "Leave the room: give up the place, or end the active session and free its slot.",
    response=model.Left,
    auth="account",
    errors=(401, 403, 404),
    headers=(_TICKET,),
    tags=("room",),
)
async def leave(request: web.Request) -> web.Response:
    room = _room_id(request)
    rt = await _runtime(request, room)
    _, ticket = _account_ticket(request, room)
    code, _ = await request.app[ROOMS].leave(rt, ticket)
    if code == "mismatch":
        raise _refused(code, _NOT_ON_RECORD)
    response = webio.respond(model.Left(room=room, state="left"))
    response.del_cookie(COOKIE_PREFIX + room, path="/")
    response.del_cookie(ADMISSION_COOKIE_PREFIX + room, path="/")
    return response


@openapi.endpoint(
    "Keep an admitted session alive (the protected site calls it with the admission token "
    "as bearer); pushes the idle expiry forward and returns a fresh admission token.",
    response=model.Session,
    auth="admission",
    errors=(401, 403, 404, 409),
    tags=("room",),
)
async def heartbeat(request: web.Request) -> web.Response:
    room = _room_id(request)
    rt = await _runtime(request, room)
    account, sid = _admission_subject(request, rt)
    code, expires_at = await request.app[ROOMS].heartbeat(rt, account)
    if code != "ok":  # 'unknown' too: the room was deleted since _runtime() found it
        raise _refused("gone", "this session has ended")
    token, token_exp = _admission_token(request, rt, account, sid, expires_at)
    response = webio.respond(model.Session(
        room=room, session_expires_at=wire.rfc3339(expires_at), token=token,
        token_expires_at=wire.rfc3339(token_exp),
    ))  # fmt: skip
    _set_admission_cookie(response, room, token, token_exp, request.app[SETTINGS].rooms)
    return response


def _admission_subject(request: web.Request, rt: Runtime) -> tuple[str, str]:
    """(account, session id) of the admission token in the bearer header, for this room."""
    try:
        claims = verify_admission(
            request.app[KEYRING],
            auth.bearer(request.headers.get("Authorization")),
            audience=rt.spec.audience,
            issuer=request.app[SETTINGS].rooms.admission_issuer,
        )
    except auth.Refused as exc:
        reason = exc.reason if exc.reason in _REJECT else "malformed"
        raise _reject(reason, errors.unauthorized(exc.detail)) from None
    if claims["room"] != rt.id:
        raise _reject("other_room", errors.forbidden("admission token is for another room"))
    return str(claims["sub"]), str(claims["sid"])


@openapi.endpoint(
    "Public keys that verify admission tokens and e-tickets (JWKS, RFC 7517; check `aud`), "
    "old keys kept until what they signed expires",
    response=model.Jwks,
    tags=("room",),
)
async def jwks(request: web.Request) -> web.Response:
    keys = request.app[KEYRING].published()
    if (tickets := request.app.get(ETICKET_KEYRING)) is not None:  # e-tickets: same JWKS
        keys += tickets.published()
    response = webio.respond(model.Jwks(keys=keys))
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


# --- admin -----------------------------------------------------------------------------------


@openapi.endpoint(
    "Every room with its live counters",
    response=model.RoomList,
    auth="admin",
    scope=SCOPE_READ,
    tags=("admin",),
)
async def list_rooms(request: web.Request) -> web.Response:
    admin_of(request, SCOPE_READ)
    rooms = request.app[ROOMS]
    return webio.respond(
        model.RoomList(
            rooms=[
                rooms.stats(rt) for room in rooms.ids() if (rt := rooms.get(room)) and rt.counters
            ]
        )
    )


@openapi.endpoint(
    "A room's spec and live counters",
    response=model.RoomStats,
    auth="admin",
    scope=SCOPE_READ,
    errors=(404,),
    tags=("admin",),
)
async def show_room(request: web.Request) -> web.Response:
    admin_of(request, SCOPE_READ)
    rt = await _runtime(request, _room_id(request))
    await request.app[ROOMS].tick(rt)  # fresh counters for ops (a tick is always safe)
    return webio.respond(request.app[ROOMS].stats(rt))


@openapi.endpoint(
    "Create or replace a room (201 when created). Counters and tickets are kept on replace.",
    request=model.RoomSpec,
    response=model.RoomStats,
    status=201,
    also_status=(200,),
    auth="admin",
    scope=SCOPE_WRITE,
    errors=(400, 404, 422),
    tags=("admin",),
)
async def put_room(request: web.Request) -> web.Response:
    admin = admin_of(request, SCOPE_WRITE)
    room = _room_id(request)
    spec = await webio.read_json(request, model.RoomSpec)
    act = await request_act(request, admin.subject, "room.put", f"room:{room}")
    code = await request.app[ROOMS].configure(room, "put", spec, act)
    log.info("room configured", extra={"room": room, "outcome": code})
    rt = await _runtime(request, room)
    return webio.respond(request.app[ROOMS].stats(rt), status=201 if code == "created" else 200)


@openapi.endpoint(
    "Change a live room: rate, max active, idle timeout, pause, closing time, queueing mode. "
    "The pacer applies it within a second.",
    request=model.RoomPatch,
    response=model.RoomStats,
    auth="admin",
    scope=SCOPE_WRITE,
    errors=(400, 404, 422),
    tags=("admin",),
)
async def patch_room(request: web.Request) -> web.Response:
    admin = admin_of(request, SCOPE_WRITE)
    room = _room_id(request)
    patch = await webio.read_json(request, model.RoomPatch)
    if not spec_fields(patch):
        raise errors.invalid_body([errors.FieldError(
            field="(body)", detail="give at least one field to change"
        )])  # fmt: skip
    return await _patch(request, room, patch, admin.subject, "room.patch")


async def _patch(
    request: web.Request, room: str, patch: model.RoomPatch, actor: str, action: str
) -> web.Response:
    act = await request_act(request, actor, action, f"room:{room}")
    code = await request.app[ROOMS].configure(room, "patch", patch, act)
    if code == "unknown":
        raise _refused(code, f"no room {room!r}")
    if code == "bad_window":
        raise errors.invalid_body(
            [errors.FieldError(field="closes_at", detail="must be after the room's opens_at")]
        )
    log.info("room changed", extra={"room": room, "change": wire.encode(patch).decode()})
    return webio.respond(request.app[ROOMS].stats(await _runtime(request, room)))


@openapi.endpoint(
    "Pause admissions (the queue keeps its order)",
    response=model.RoomStats,
    auth="admin",
    scope=SCOPE_WRITE,
    errors=(404,),
    tags=("admin",),
)
async def pause_room(request: web.Request) -> web.Response:
    admin = admin_of(request, SCOPE_WRITE)
    return await _patch(
        request, _room_id(request), model.RoomPatch(paused=True), admin.subject, "room.pause"
    )


@openapi.endpoint(
    "Resume admissions",
    response=model.RoomStats,
    auth="admin",
    scope=SCOPE_WRITE,
    errors=(404,),
    tags=("admin",),
)
async def resume_room(request: web.Request) -> web.Response:
    admin = admin_of(request, SCOPE_WRITE)
    return await _patch(
        request, _room_id(request), model.RoomPatch(paused=False), admin.subject, "room.resume"
    )


@openapi.endpoint(
    "Stock signal from the linked sale (share of stock left, 0..1): the pacer slows as it "
    "falls and stops at 0; waiting people then see `sold_out`.",
    request=model.StockSignal,
    response=model.RoomStats,
    auth="admin",
    scope=SCOPE_WRITE,
    errors=(400, 404, 422),
    tags=("admin",),
)
async def put_stock(request: web.Request) -> web.Response:
    admin = admin_of(request, SCOPE_WRITE)
    room = _room_id(request)
    signal = await webio.read_json(request, model.StockSignal)
    rt = await _runtime(request, room)
    act = await request_act(request, admin.subject, "room.stock", f"room:{room}")
    try:
        await request.app[ROOMS].put_stock(room, signal.remaining, act)
    except UnknownRoom:
        raise errors.not_found(f"no room {room!r}") from None
    return webio.respond(request.app[ROOMS].stats(rt))


# --- wiring ----------------------------------------------------------------------------------


async def _rooms_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    rooms = Rooms(app[STORE], settings.rooms, app[MARKS])
    app[ROOMS] = rooms
    try:
        await rooms.ensure_defined(settings.rooms.define)
        await rooms.refresh_index()  # every room's link (guard.py) known before serving
    except Exception as exc:  # Redis not up yet: the pacer loop picks rooms up later
        log.warning("rooms from config not created yet", extra={"error": type(exc).__name__})
    pacer = Pacer(rooms, app[KEYRING].refresh)
    pacer.start()
    yield
    await pacer.stop()
    await rooms.close()


def setup(app: web.Application) -> None:
    """Routes, keys and the pacer loop; call after the store's cleanup context."""
    settings = app[SETTINGS]
    cfg = settings.rooms
    secret = ticket_secret(cfg)
    app[SIGNER] = TicketSigner(secret, cfg.admission_issuer, settings.security.verified_cache_size)
    app[MARKS] = Marks(secret, settings.security.verified_cache_size)
    app[KEYRING] = Keyring(cfg.signing_key_dir)
    app[CHALLENGER] = Challenger(secret, cfg.admission_issuer, cfg.challenge_ttl_s)
    app[GUARD] = Guard(app[KEYRING], cfg.admission_issuer, settings.security.verified_cache_size)
    app.cleanup_ctx.append(_rooms_ctx)
    r = app.router
    r.add_post("/v1/rooms/{room}/join", join)
    r.add_get("/v1/rooms/{room}/status", status)
    r.add_get("/v1/rooms/{room}/events", events)
    r.add_post("/v1/rooms/{room}/admit", admit)
    r.add_post("/v1/rooms/{room}/leave", leave)
    r.add_post("/v1/rooms/{room}/heartbeat", heartbeat)
    r.add_post("/v1/rooms/{room}/revoke", revocation.revoke)  # the protected site's
    r.add_get("/.well-known/jwks.json", jwks)
    r.add_get("/v1/admin/rooms", list_rooms)
    r.add_get("/v1/admin/rooms/{room}", show_room)
    r.add_put("/v1/admin/rooms/{room}", put_room)
    r.add_patch("/v1/admin/rooms/{room}", patch_room)
    r.add_post("/v1/admin/rooms/{room}/pause", pause_room)
    r.add_post("/v1/admin/rooms/{room}/resume", resume_room)
    r.add_put("/v1/admin/rooms/{room}/stock", put_stock)
