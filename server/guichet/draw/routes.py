"""HTTP routes of the draw: registration (public) and configuration (admin)."""

from __future__ import annotations

from aiohttp import web

from guichet import auth, errors, metrics, openapi, wire
from guichet.draw import model
from guichet.draw.service import Draws
from guichet.state import STORE, VERIFIER

DRAWS = web.AppKey("draws", Draws)
SCOPE_WRITE = "draws:write"


class DrawPublic(wire.Reply, kw_only=True):
    """A draw as the public sees it: its rules and how many entries each stratum has."""

    id: str
    spec: model.DrawSpec
    entries: dict[str, int]


class Withdrawn(wire.Reply, kw_only=True):
    draw: str
    status: str


def _draw_id(request: web.Request) -> str:
    draw = request.match_info["draw"]
    if not model.valid_draw_id(draw):
        raise errors.not_found(f"no draw {draw[:60]!r}")
    return draw


def _entry(draw: str, account: str, value: str) -> model.Entry:
    stratum, _, registered_us = value.partition(":")
    return model.Entry(
        draw=draw,
        account=account,
        stratum=stratum,
        status="registered",
        registered_at=wire.rfc3339(int(registered_us) / 1_000_000),
    )


def _period(opens_us: int, closes_us: int) -> str:
    return f"[{wire.rfc3339(opens_us / 1_000_000)}, {wire.rfc3339(closes_us / 1_000_000)})"


@openapi.endpoint(
    "Enter the draw (consent required). 201 the first time, 200 with the same entry after: "
    "idempotent under retries. Outside the registration period: 409 naming the period.",
    request=model.EntryRequest,
    response=model.Entry,
    status=201,
    auth="account",
    errors=(404, 409),
    tags=("draw",),
)
async def register(request: web.Request) -> web.Response:
    draw = _draw_id(request)
    account = auth.authenticate_account(request.app[VERIFIER], request.headers.get("Authorization"))
    try:
        body = await wire.read_json(request, model.EntryRequest)
    except errors.Problem:
        metrics.DRAW_REJECTIONS.labels("invalid").inc()
        raise
    code, value, opens, closes = await request.app[DRAWS].register(
        draw, account.id, body.stratum or ""
    )
    if code in ("created", "again"):
        entry = _entry(draw, account.id, value)
        if code == "created":
            metrics.DRAW_ENTRIES.labels(draw, entry.stratum).inc()
        return wire.respond(entry, status=201 if code == "created" else 200)
    metrics.DRAW_REJECTIONS.labels(code).inc()
    if code == "unknown":
        raise errors.not_found(f"no draw {draw!r}")
    if code == "bad_stratum":
        raise errors.invalid_body(
            [errors.FieldError(field="stratum", detail="not a stratum of this draw")]
        )
    when = "has not opened yet" if code == "not_open" else "has closed"
    raise errors.conflict(
        "registration-" + ("not-open" if code == "not_open" else "closed"),
        "Outside the registration period",
        f"registration {when}; the period is {_period(opens, closes)}",
    )


@openapi.endpoint(
    "My entry in the draw and its status",
    response=model.Entry,
    auth="account",
    errors=(404,),
    tags=("draw",),
)
async def my_entry(request: web.Request) -> web.Response:
    draw = _draw_id(request)
    account = auth.authenticate_account(request.app[VERIFIER], request.headers.get("Authorization"))
    value = await request.app[DRAWS].entry(draw, account.id)
    if value is None:
        raise errors.not_found(f"no entry of this account in draw {draw!r}")
    return wire.respond(_entry(draw, account.id, value))


@openapi.endpoint(
    "Withdraw my entry (until registration closes)",
    response=Withdrawn,
    auth="account",
    errors=(404, 409),
    tags=("draw",),
)
async def withdraw(request: web.Request) -> web.Response:
    draw = _draw_id(request)
    account = auth.authenticate_account(request.app[VERIFIER], request.headers.get("Authorization"))
    code, closes = await request.app[DRAWS].withdraw(draw, account.id)
    if code in ("none", "unknown"):
        raise errors.not_found(f"no entry of this account in draw {draw!r}")
    if code == "closed":
        raise errors.conflict(
            "registration-closed",
            "Registration closed",
            f"entries can be withdrawn until {wire.rfc3339(closes / 1_000_000)}",
        )
    metrics.DRAW_WITHDRAWALS.labels(draw).inc()
    return wire.respond(Withdrawn(draw=draw, status="withdrawn"))


@openapi.endpoint(
    "A draw's rules and entry counts by stratum",
    response=DrawPublic,
    errors=(404,),
    tags=("draw",),
)
async def show_draw(request: web.Request) -> web.Response:
    draw = _draw_id(request)
    spec = await request.app[DRAWS].spec(draw)
    if spec is None:
        raise errors.not_found(f"no draw {draw!r}")
    counts = await request.app[DRAWS].counts(draw)
    return wire.respond(DrawPublic(id=draw, spec=spec, entries=counts))


@openapi.endpoint(
    "Create or replace a draw (201 when created)",
    request=model.DrawSpec,
    response=DrawPublic,
    status=201,
    auth="admin",
    scope=SCOPE_WRITE,
    errors=(404,),
    tags=("admin",),
)
async def put_draw(request: web.Request) -> web.Response:
    verifier, header = request.app[VERIFIER], request.headers.get("Authorization")
    auth.authenticate_admin(verifier, header, SCOPE_WRITE)
    draw = _draw_id(request)
    spec = await wire.read_json(request, model.DrawSpec)
    created = await request.app[DRAWS].put(draw, spec)
    counts = await request.app[DRAWS].counts(draw)
    body = DrawPublic(id=draw, spec=spec, entries=counts)
    return wire.respond(body, status=201 if created else 200)


async def _on_startup(app: web.Application) -> None:
    app[DRAWS] = Draws(app[STORE])


def setup(app: web.Application) -> None:
    """Routes of the draw; the service binds to the store at start-up."""
    app.on_startup.append(_on_startup)
    r = app.router
    r.add_get("/v1/draws/{draw}", show_draw)
    r.add_post("/v1/draws/{draw}/entries", register)
    r.add_get("/v1/draws/{draw}/entries/me", my_entry)
    r.add_delete("/v1/draws/{draw}/entries/me", withdraw)
    r.add_put("/v1/admin/draws/{draw}", put_draw)
