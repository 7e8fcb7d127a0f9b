"""HTTP routes of the draw: registration (public) and configuration (admin)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Literal, assert_never

from aiohttp import web
from redis.exceptions import RedisError

from guichet import errors, metrics, openapi, webio, wire
from guichet.audit.web import request_act
from guichet.background import Periodic
from guichet.draw import model, monitor, refusals
from guichet.draw.service import Draws, DrawState, registered_entry
from guichet.room.guard import ADMISSION_HEADER, require_admission
from guichet.state import DRAWS, SETTINGS, STORE, account_of, admin_of

log = logging.getLogger("guichet.draw")

SCOPE_WRITE = "draws:write"


DrawStatus = Literal["upcoming", "registration_open", "registration_closed", "drawn"]


class DrawPublic(wire.Reply, kw_only=True):
    """A draw as the public sees it: its rules, entries by stratum, the commitment to its
    secret seed (published before registration closes) and, once drawn, its transcript."""

    id: str
    status: DrawStatus
    spec: model.DrawSpec
    entries: dict[str, int]
    commitment: str | None = None
    committed_at: str | None = None
    ran_at: str | None = None
    ranked: int | None = None
    transcript_url: str | None = None


def _public(draw: str, state: DrawState, counts: dict[str, int]) -> DrawPublic:
    spec, now = state.spec, time.time()
    status: DrawStatus = "drawn"
    if state.ran_us is None:
        status = "registration_closed"
        if now < spec.registration_opens_at.timestamp():
            status = "upcoming"
        elif now < spec.registration_closes_at.timestamp():
            status = "registration_open"
    return DrawPublic(
        id=draw,
        status=status,
        spec=spec,
        entries=counts,
        commitment=state.commitment,
        committed_at=None if state.committed_us is None else wire.rfc3339(state.committed_us / 1e6),
        ran_at=None if state.ran_us is None else wire.rfc3339(state.ran_us / 1e6),
        ranked=state.ranked,
        transcript_url=None if state.ran_us is None else f"/v1/draws/{draw}/transcript",
    )


class Withdrawn(wire.Reply, kw_only=True):
    draw: str
    status: str


def _draw_id(request: web.Request) -> str:
    return webio.slug_param(request, "draw")


@openapi.endpoint(
    "Enter the draw (consent required). 201 the first time, 200 with the same entry after: "
    "idempotent under retries. Outside the registration period: 409 naming the period. A "
    "restricted stratum (`spec.restricted`) needs membership, from the token's groups claim "
    "or the member list ops loaded: 403 `not-a-member` otherwise; without `stratum`, the "
    "entry lands in the highest stratum the account is a member of. A draw linked to a "
    "waiting room also needs that room's admission token (403 otherwise).",
    request=model.EntryRequest,
    response=model.Entry,
    status=201,
    also_status=(200,),
    auth="account",
    headers=(openapi.admission_header(ADMISSION_HEADER),),
    errors=(403, 404, 409),
    tags=("draw",),
)
async def register(request: web.Request) -> web.Response:
    draw = _draw_id(request)
    account = account_of(request)
    require_admission(request, account.id, draw=draw)
    try:
        body = await webio.read_json(request, model.EntryRequest)
    except errors.Problem:
        metrics.DRAW_REJECTIONS.labels("invalid").inc()
        raise
    code, value, opens, closes, drawn = await request.app[DRAWS].register(
        draw, account.id, body.stratum or "", account.groups
    )
    match code:
        case "created":
            entry = registered_entry(draw, account.id, value)
            metrics.DRAW_ENTRIES.labels(draw, entry.stratum).inc()
            return webio.respond(entry, status=201)
        case "again":  # the same entry; once drawn, with its status now (window…)
            again = await request.app[DRAWS].entry(draw, account.id) if drawn else None
            return webio.respond(again or registered_entry(draw, account.id, value))
    metrics.DRAW_REJECTIONS.labels(code).inc()
    match code:
        case "unknown":
            raise refusals.problem("no_draw", draw)
        case "bad_stratum" | "not_open" | "closed":
            raise refusals.problem(code, draw, refusals.Facts(opens_us=opens, closes_us=closes))
        case "not_a_member":
            raise refusals.problem(code, draw, refusals.Facts(stratum=body.stratum or ""))
        case "stale":  # the service asks again; it answers 'stale' only if the spec keeps moving
            raise RuntimeError("draw spec kept changing during a registration")
        case _:
            assert_never(code)


@openapi.endpoint(
    "My entry in the draw: its status (registered, not_selected_yet, window_assigned) and, "
    "once given, its fixed purchase window",
    response=model.Entry,
    auth="account",
    errors=(404,),
    tags=("draw",),
)
async def my_entry(request: web.Request) -> web.Response:
    draw = _draw_id(request)
    account = account_of(request)
    entry = await request.app[DRAWS].entry(draw, account.id)
    if entry is None:
        raise errors.not_found(f"no entry of this account in draw {draw!r}")
    return webio.respond(entry)


@openapi.endpoint(
    "Withdraw my entry (until registration closes)",
    response=Withdrawn,
    auth="account",
    errors=(404, 409),
    tags=("draw",),
)
async def withdraw(request: web.Request) -> web.Response:
    draw = _draw_id(request)
    account = account_of(request)
    code, closes = await request.app[DRAWS].withdraw(draw, account.id)
    match code:
        case "none" | "unknown":
            raise refusals.problem("no_entry", draw)
        case "closed":
            raise refusals.problem("withdrawal_closed", draw, refusals.Facts(closes_us=closes))
        case "ok":
            pass
        case _:
            assert_never(code)
    metrics.DRAW_WITHDRAWALS.labels(draw).inc()
    return webio.respond(Withdrawn(draw=draw, status="withdrawn"))


@openapi.endpoint(
    "A draw's rules and entry counts by stratum",
    response=DrawPublic,
    errors=(404,),
    tags=("draw",),
)
async def show_draw(request: web.Request) -> web.Response:
    draw = _draw_id(request)
    state = await request.app[DRAWS].state(draw)
    if state is None:
        raise errors.not_found(f"no draw {draw!r}")
    counts = await request.app[DRAWS].counts(draw)
    return webio.respond(_public(draw, state, counts))


@openapi.endpoint(
    "The draw's signed transcript (published once it has run): commitment, revealed seed, "
    "beacon, parameters, entry-set and ranking digests; `guichet draw verify` checks it",
    response=model.Transcript,
    errors=(404,),
    tags=("draw",),
)
async def transcript(request: web.Request) -> web.Response:
    draw = _draw_id(request)
    published = await request.app[DRAWS].transcript(draw)
    if published is None:
        raise errors.not_found(f"draw {draw!r} has not been drawn yet (or does not exist)")
    return webio.respond(published)


class DrawJwks(wire.Reply, kw_only=True):
    keys: list[dict[str, str]]


@openapi.endpoint(
    "Public keys that verify draw transcripts (JWKS, RFC 7517): every key that ever signed a "
    "published transcript, kept for good (`guichet draw verify --jwks`)",
    response=DrawJwks,
    tags=("draw",),
)
async def draw_jwks(request: web.Request) -> web.Response:
    response = webio.respond(DrawJwks(keys=await request.app[DRAWS].signing_keys()))
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@openapi.endpoint(
    "Create or replace a draw (201 when created; 409 once committed, or when the new strata "
    "leave out a stratum that entries name)",
    request=model.DrawSpec,
    response=DrawPublic,
    status=201,
    also_status=(200,),
    auth="admin",
    scope=SCOPE_WRITE,
    errors=(404, 409),
    tags=("admin",),
)
async def put_draw(request: web.Request) -> web.Response:
    admin = admin_of(request, SCOPE_WRITE)
    draw = _draw_id(request)
    spec = await webio.read_json(request, model.DrawSpec)
    act = await request_act(request, admin.subject, "draw.put", f"draw:{draw}")
    code, stratum, entries = await request.app[DRAWS].put(draw, spec, act)
    match code:
        case "committed" | "orphans":
            raise refusals.problem(code, draw, refusals.Facts(stratum=stratum, entries=entries))
        case "created" | "replaced":
            pass
        case _:
            assert_never(code)
    state = await request.app[DRAWS].state(draw)
    assert state is not None
    counts = await request.app[DRAWS].counts(draw)
    return webio.respond(_public(draw, state, counts), status=201 if code == "created" else 200)


async def _draws_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    draws = app[DRAWS] = Draws(app[STORE])
    try:
        await draws.ensure_defined(settings.draws.define)
    except (RedisError, OSError) as exc:  # Redis not up yet: ops can PUT them later
        log.warning("draws from config not created", extra={"error": type(exc).__name__})
    gauges = Periodic(
        "draw gauges", settings.draws.monitor_interval_s, lambda: monitor.refresh(draws)
    )
    gauges.start()
    yield
    await gauges.stop()


def setup(app: web.Application) -> None:
    """Routes of the draw; the service binds to the store at start-up."""
    app.cleanup_ctx.append(_draws_ctx)
    r = app.router
    r.add_get("/v1/draws/{draw}", show_draw)
    r.add_get("/v1/draws/{draw}/transcript", transcript)
    r.add_get("/.well-known/draw-jwks.json", draw_jwks)
    r.add_post("/v1/draws/{draw}/entries", register)
    r.add_get("/v1/draws/{draw}/entries/me", my_entry)
    r.add_delete("/v1/draws/{draw}/entries/me", withdraw)
    r.add_put("/v1/admin/draws/{draw}", put_draw)
