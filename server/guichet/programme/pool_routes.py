"""The programme's pool routes: the central pool, programmes, allocations, audit, reclaim.

Writes are the central coordinator's (``programme:central``); a programme is readable by the
central role, its bound operator, and auditors (``programme:audit``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

from aiohttp import web

from guichet import errors, openapi, webio, wire
from guichet.auth import Admin, Refused, bearer
from guichet.programme import model, pool, roles
from guichet.programme import pool_refusals as refusals
from guichet.programme.acting import body_act, check, operator_act
from guichet.programme.pool_service import SCRIPTS as SERVICE_SCRIPTS
from guichet.programme.pool_service import PoolService, Reclaimed, audit
from guichet.state import STORE, VERIFIER, admin_of
from guichet.store.keys import ProgrammeKeys
from guichet.store.scripts import LuaScript
from guichet.units import US_PER_S

SCRIPTS: tuple[LuaScript, ...] = SERVICE_SCRIPTS
POOL = web.AppKey("programme_pool", PoolService)
POOL_MAX_BYTES = 8 * 1024 * 1024
_GAMES_QUERY = (("games", {"type": "string", "enum": list(model.GAMES)}),)


class GamesTickets(wire.Reply, kw_only=True):
    games: model.Games
    tickets: int


class PoolLoaded(wire.Reply, kw_only=True):
    loaded: list[GamesTickets]


class PoolItem(wire.Reply, kw_only=True):
    session: str
    category: str
    loaded: int
    pool: int
    allocated: int
    assigned: int
    used: int


class PoolView(wire.Reply, kw_only=True):
    games: model.Games
    sessions: dict[str, pool.SessionInfo]
    items: list[PoolItem]


class ProgrammeView(wire.Reply, kw_only=True):
    """A programme: its spec (who wrote it last, when), allocation left unassigned per item,
    counters, and its reclaim."""

    id: str
    public: model.Public
    games: model.Games
    operator: str
    reclaim_on: date
    reclaim_at: str
    retention_until: date
    criteria: list[str]
    by: str
    at: str
    allocation: dict[str, int]
    stats: dict[str, int]
    reclaimed_at: str | None = None


class Allocation(wire.Reply, kw_only=True):
    programme: str
    allocated: int
    allocation: dict[str, int]


class Audit(wire.Reply, kw_only=True):
    games: model.Games
    items: int
    loaded: int
    pool: int
    allocated: int
    assigned: int
    used: int
    breaches: list[str]


class ReclaimRequest(wire.Base):
    games: model.Games


class ReclaimOutcome(wire.Reply, kw_only=True):
    programme: str
    outcome: str  # reclaimed | done (before) | too_early
    tickets: int
    reclaim_at: str


class ReclaimReport(wire.Reply, kw_only=True):
    games: model.Games
    programmes: list[ReclaimOutcome]


def _rfc(us: int) -> str:
    return wire.rfc3339(us / US_PER_S)


def _programme_id(request: web.Request) -> str:
    return webio.slug_param(request, "programme")


def _games_param(request: web.Request) -> model.Games:
    value = request.query.get("games", "")
    for g in model.GAMES:
        if value == g:
            return g
    raise errors.invalid_body(
        [errors.FieldError(field="games", detail=f"one of {', '.join(model.GAMES)}")],
        f"games: {value[:30]!r} is not one of {', '.join(model.GAMES)}",
    )


def _any_of(request: web.Request, *scopes: str, programme: str | None = None) -> Admin:
    """An admin with one of ``scopes``; with ``programme``, an operator bound to it passes too
    (403 ``not-your-programme`` for an operator of another)."""
    verifier = request.app[VERIFIER]
    auth = request.headers.get("Authorization")
    for scope in scopes:
        try:
            return verifier.admin(bearer(auth), scope)
        except Refused as exc:
            if exc.reason != "insufficient_scope":
                break  # the last check below answers 401 (and counts it)
    if programme is None:
        return admin_of(request, scopes[-1])  # 401 or 403, counted
    return roles.operator(request, programme)


# --- pool --------------------------------------------------------------------------------------


@openapi.endpoint(
    "Load the State's pool, all or nothing (JSON, or CSV with `Content-Type: text/csv` and the "
    "header games,session,date,name,category,quantity; up to 8 MiB). A bad row is named by its "
    "line; a games' pool loads once (409 `pool-loaded`)",
    request=pool.PoolFile,
    response=PoolLoaded,
    auth="admin",
    scope=roles.CENTRAL,
    errors=(400, 409, 413, 415, 422),
    tags=("programme",),
)
@webio.body_limit(POOL_MAX_BYTES)
async def put_pool(request: web.Request) -> web.Response:
    admin = roles.central(request)
    if request.content_type != "text/csv":
        webio.require_json(request)
    raw = await webio.read_large(request, POOL_MAX_BYTES)
    try:
        parsed = pool.parse(raw, content_type=request.content_type)
    except pool.PoolError as exc:
        raise errors.invalid_body([errors.FieldError(field="body", detail=str(exc))]) from None
    acting = body_act(request, roles.actor_of(admin), "programme.pool-load", "pool", raw)
    answers = await request.app[POOL].load(parsed, acting)
    for a in answers:
        if a.code == "pool_loaded":
            raise refusals.problem(a.code, "", refusals.Facts(games=a.games, left=a.tickets))
    loaded = [GamesTickets(games=g, tickets=parsed.total(g)) for g in model.GAMES
              if g in parsed.counts]  # fmt: skip
    return webio.respond(PoolLoaded(loaded=loaded))


@openapi.endpoint(
    "The pool of one games: its sessions, and per session and category the tickets loaded, in "
    "the pool, allocated to programmes (unassigned), assigned and used",
    response=PoolView,
    auth="admin",
    scope=f"{roles.CENTRAL} or {roles.AUDIT}",
    errors=(422,),
    query=_GAMES_QUERY,
    required_query=("games",),
    tags=("programme",),
)
async def get_pool(request: web.Request) -> web.Response:
    _any_of(request, roles.CENTRAL, roles.AUDIT)
    games = _games_param(request)
    service = request.app[POOL]
    levels = await service.levels(games)
    items = []
    for item in sorted(levels.loaded):
        session, _, category = item.partition(":")
        items.append(PoolItem(
            session=session, category=category, loaded=levels.loaded[item],
            pool=levels.pool.get(item, 0), allocated=levels.allocated(item),
            assigned=levels.assigned.get(item, 0), used=levels.used.get(item, 0),
        ))  # fmt: skip
    view = PoolView(games=games, sessions=await service.sessions(games), items=items)
    return webio.respond(view)


@openapi.endpoint(
    "Check pool + allocated-unassigned + assigned + used = loaded for every session and "
    "category of a games; `breaches` names each item that breaks it",
    response=Audit,
    auth="admin",
    scope=f"{roles.CENTRAL} or {roles.AUDIT}",
    errors=(422,),
    query=_GAMES_QUERY,
    required_query=("games",),
    tags=("programme",),
)
async def get_audit(request: web.Request) -> web.Response:
    _any_of(request, roles.CENTRAL, roles.AUDIT)
    games = _games_param(request)
    levels = await request.app[POOL].levels(games)
    return webio.respond(Audit(
        games=games, items=len(levels.loaded), loaded=sum(levels.loaded.values()),
        pool=sum(levels.pool.values()),
        allocated=sum(sum(a.values()) for a in levels.alloc.values()),
        assigned=sum(levels.assigned.values()), used=sum(levels.used.values()),
        breaches=audit(levels),
    ))  # fmt: skip


# --- programmes --------------------------------------------------------------------------------


async def _view(service: PoolService, programme: str) -> ProgrammeView | None:
    spec = await service.spec(programme)
    if spec is None:
        return None
    reclaimed = (await service.reclaimed(spec.games)).get(programme)
    return ProgrammeView(
        id=programme, public=spec.public, games=spec.games, operator=spec.operator,
        reclaim_on=spec.reclaim_on, reclaim_at=wire.rfc3339(
            model.reclaim_at(spec.reclaim_on).timestamp()),
        retention_until=spec.retention_until, criteria=spec.criteria, by=spec.by,
        at=_rfc(spec.at), allocation=await service.allocation(programme, spec.games),
        stats=await service.stats(programme, spec.games),
        reclaimed_at=None if reclaimed is None else _rfc(reclaimed),
    )  # fmt: skip


@openapi.endpoint(
    "Create or update a programme (201 when created): its public, games, operator, reclaim "
    "date (default 1 May 2024 olympic, 1 June 2024 paralympic), retention date and eligibility "
    "criteria. Public and games are fixed once created (409 `programme-fixed`)",
    request=pool.ProgrammeBody,
    response=ProgrammeView,
    status=201,
    auth="admin",
    scope=roles.CENTRAL,
    errors=(404, 409, 415, 422),
    tags=("programme",),
)
async def put_programme(request: web.Request) -> web.Response:
    admin = roles.central(request)
    programme = _programme_id(request)
    body = await webio.read_json(request, pool.ProgrammeBody)
    service = request.app[POOL]
    acting = await operator_act(request, roles.actor_of(admin), "programme.put",
                                f"programme:{programme}")  # fmt: skip
    put = await service.put(programme, body, acting)
    if put.code is None:
        raise refusals.problem("games_fixed", programme, refusals.Facts(value=put.fixed))
    if put.code == "public_fixed":
        raise refusals.problem(put.code, programme, refusals.Facts(value=put.fixed))
    view = await _view(service, programme)
    return webio.respond(view, status=201 if put.code == "created" else 200)


@openapi.endpoint(
    "A programme: spec, unassigned allocation per session and category, counters, reclaim. "
    "For the central role, auditors, and the programme's own operator (403 "
    "`not-your-programme` for another's)",
    response=ProgrammeView,
    auth="admin",
    scope=f"{roles.CENTRAL}, {roles.AUDIT} or {roles.OPERATE}",
    errors=(403, 404),
    tags=("programme",),
)
async def get_programme(request: web.Request) -> web.Response:
    programme = _programme_id(request)
    _any_of(request, roles.CENTRAL, roles.AUDIT, programme=programme)
    view = await _view(request.app[POOL], programme)
    if view is None:
        raise errors.not_found(f"no programme {programme!r}")
    return webio.respond(view)


@openapi.endpoint(
    "Allocate tickets of the pool to a programme, all or nothing (409 `pool-short` naming the "
    "session and category and the tickets left)",
    request=pool.AllocationBody,
    response=Allocation,
    auth="admin",
    scope=roles.CENTRAL,
    errors=(404, 409, 415, 422),
    tags=("programme",),
)
async def allocate(request: web.Request) -> web.Response:
    admin = roles.central(request)
    programme = _programme_id(request)
    body = await webio.read_json(request, pool.AllocationBody)
    service = request.app[POOL]
    acting = await operator_act(request, roles.actor_of(admin), "programme.allocate",
                                f"programme:{programme}")  # fmt: skip
    answer = await service.allocate(programme, body.counts(), acting)
    if answer.code != "ok":
        facts = refusals.Facts(item=answer.item, left=answer.tickets)
        raise refusals.problem(answer.code, programme, facts)
    games = await service.games_of(programme)
    assert games is not None
    current = await service.allocation(programme, games)
    return webio.respond(Allocation(programme=programme, allocated=answer.tickets,
                                    allocation=current))  # fmt: skip


# --- reclaim -------------------------------------------------------------------------------------


def outcome(programme: str, r: Reclaimed) -> ReclaimOutcome:
    name = {"ok": "reclaimed", "done": "done", "too_early": "too_early"}.get(r.code, r.code)
    return ReclaimOutcome(programme=programme, outcome=name, tickets=r.tickets,
                          reclaim_at=_rfc(r.reclaim_at_us))  # fmt: skip


@openapi.endpoint(
    "Reclaim a games (seed §2): every programme whose reclaim date has come returns its "
    "unassigned tickets to the pool (idempotent: `done` for one reclaimed before). 409 "
    "`reclaim-too-early` when no programme of the games may be reclaimed yet",
    request=ReclaimRequest,
    response=ReclaimReport,
    auth="admin",
    scope=roles.CENTRAL,
    errors=(409, 415, 422),
    tags=("programme",),
)
async def reclaim(request: web.Request) -> web.Response:
    admin = roles.central(request)
    body = await webio.read_json(request, ReclaimRequest)
    service = request.app[POOL]
    results = []
    actings = {}
    for programme in await service.programmes(body.games):  # every bar before any reclaim
        actings[programme] = await operator_act(
            request, roles.actor_of(admin), "programme.reclaim", f"programme:{programme}"
        )
        await check(service.store, ProgrammeKeys(body.games), actings[programme],
                    programme=programme)  # fmt: skip
    for programme, acting in actings.items():
        r = await service.reclaim(programme, acting)
        if r.code != "no_programme":
            results.append(outcome(programme, r))
    early = [r for r in results if r.outcome == "too_early"]
    if early and len(early) == len(results):
        first = early[0]
        raise refusals.problem("too_early", first.programme,
                               refusals.Facts(value=first.reclaim_at))  # fmt: skip
    return webio.respond(ReclaimReport(games=body.games, programmes=results))


# --- wiring --------------------------------------------------------------------------------------


async def _pool_ctx(app: web.Application) -> AsyncIterator[None]:
    app[POOL] = PoolService(app[STORE])
    yield


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_pool_ctx)
    r = app.router
    r.add_put("/v1/admin/programme/pool", put_pool)
    r.add_get("/v1/admin/programme/pool", get_pool)
    r.add_get("/v1/admin/programme/audit", get_audit)
    r.add_post("/v1/admin/programme/reclaim", reclaim)
    r.add_put("/v1/admin/programmes/{programme}", put_programme)
    r.add_get("/v1/admin/programmes/{programme}", get_programme)
    r.add_post("/v1/admin/programmes/{programme}/allocations", allocate)
