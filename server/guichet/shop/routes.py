"""HTTP routes of the shop: availability (public), holds and purchases (account), sales and
catalogue (admin)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any, assert_never

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response
from redis.exceptions import ResponseError

from guichet import auth, errors, metrics, openapi, streams, webio, wire
from guichet.audit.web import request_act
from guichet.background import Periodic
from guichet.draw.service import Draws  # the purchase-window check lives with the draw
from guichet.room.guard import ADMISSION_HEADER, require_admission
from guichet.shop import model, refusals
from guichet.shop.live import SUBSCRIBER_QUEUE, Availability, Live, SaleView
from guichet.shop.service import HoldRecord, Shop
from guichet.state import LIVE, SETTINGS, SHOP, SLOTS, STORE, account_of, admin_of
from guichet.units import US_PER_S

log = logging.getLogger("guichet.shop")

SCOPE_WRITE = "sales:write"
HOLD_ID = re.compile(wire.whole(r"[A-Za-z0-9_-]{9,40}"))
IDEMPOTENCY_KEY = re.compile(wire.whole(r"[\x21-\x7e]{1,64}"))
CATALOGUE_MAX_BYTES = 8 * 1024 * 1024


class Me(wire.Reply, kw_only=True):
    """The account in this sale: its window, tickets held and bought, what it may still take."""

    sale: str
    phase: str
    window: model.SaleWindow
    tickets_held: int
    tickets_bought: int
    packs: int
    tickets_left: int
    packs_left: int


class SalePublic(wire.Reply, kw_only=True):
    id: str
    spec: model.SaleSpec
    sessions: int
    seats: int


class Loaded(wire.Reply, kw_only=True):
    sale: str
    sessions: int
    items: int
    seats: int


def _sale_id(request: web.Request) -> str:
    return webio.slug_param(request, "sale")


async def _view(request: web.Request) -> SaleView:
    sale = _sale_id(request)
    v = await request.app[LIVE].view(sale)
    if v is None:
        raise errors.not_found(f"no sale {sale!r}")
    return v


def _hold_id(request: web.Request) -> str:
    hold_id = request.match_info["hold"]
    if not HOLD_ID.match(hold_id):
        raise errors.not_found("no such hold")
    return hold_id


def _hold(sale: str, r: HoldRecord) -> model.Hold:
    return model.Hold(
        id=r.id,
        sale=sale,
        state=r.state,
        items=[
            model.HoldItem(session=s, category=f.partition(":")[2], quantity=q)
            for f, q, s in r.items
        ],
        tickets=r.tickets,
        packs=r.packs,
        expires_at=wire.rfc3339(r.expires_us / US_PER_S),
        payment_reference=r.payment_reference,
    )


# --- availability ----------------------------------------------------------------------------


@openapi.endpoint(
    "Seats left per session and category, with a level (none, few, some, many); served from "
    "each worker's snapshot, refreshed about every 500 ms",
    response=Availability,
    errors=(404,),
    tags=("shop",),
)
async def availability(request: web.Request) -> web.Response:
    v = await _view(request)
    return web.Response(
        body=v.body,
        content_type=wire.JSON_CONTENT_TYPE,
        headers={"Cache-Control": "public, max-age=1"},
    )


@openapi.endpoint(
    "Availability as Server-Sent Events: an `availability` event (the whole snapshot), then "
    "`changes` events with the items whose seats moved",
    content_type="text/event-stream",
    errors=(404, 429),
    tags=("shop",),
)
async def availability_events(request: web.Request) -> web.StreamResponse:
    """SSE: an ``availability`` event (the whole snapshot), then ``changes`` events."""
    v = await _view(request)
    address = streams.client_address(request, request.app[SETTINGS].rooms)
    with request.app[SLOTS].hold("the availability", address):
        return await _stream_availability(request, v)


async def _stream_availability(request: web.Request, v: SaleView) -> web.StreamResponse:
    queue: asyncio.Queue[bytes] = asyncio.Queue(SUBSCRIBER_QUEUE)
    v.subscribers.add(queue)
    try:
        stream: EventSourceResponse
        async with sse_response(request, headers={"Cache-Control": "no-store"},
                                ping_interval=15) as stream:  # fmt: skip
            await stream.send(v.body.decode(), event="availability")
            async for data in _drain(queue, v, request):
                await stream.send(data.decode(), event="changes")
    finally:
        v.subscribers.discard(queue)
    return stream


async def _drain(
    queue: asyncio.Queue[bytes], v: SaleView, request: web.Request
) -> AsyncIterator[bytes]:
    while queue in v.subscribers or not queue.empty():
        if request.transport is None or request.transport.is_closing():
            return
        try:
            yield await asyncio.wait_for(queue.get(), 15)
        except TimeoutError:
            continue


# --- holds -----------------------------------------------------------------------------------

_STALE_RETRIES = 3  # rules changed between reading them and the hold script: read them again


@openapi.endpoint(
    "Hold seats (all or nothing) inside the sale's purchase period and the account's purchase "
    "window, within the sale's pack and quota rules; `Idempotency-Key` header required: the "
    "same key replays the first answer. A sale linked to a waiting room also needs that "
    "room's admission token (403 `admission-required` naming the room otherwise)",
    request=model.HoldBody,
    response=model.Hold,
    status=201,
    auth="account",
    headers=(
        openapi.admission_header(ADMISSION_HEADER),
        openapi.Header(
            "Idempotency-Key",
            "Replays the first answer when sent again (1-64 printable ASCII characters)",
            required=True,
            schema={"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
        ),
    ),
    errors=(400, 403, 404, 409, 422, 503),
    tags=("shop",),
)
async def hold(request: web.Request) -> web.Response:
    started = time.perf_counter()
    v = await _view(request)
    account = account_of(request)
    require_admission(request, account.id, sale=v.sale)
    key = request.headers.get("Idempotency-Key", "")
    if not IDEMPOTENCY_KEY.match(key):
        raise errors.Problem(
            400, "idempotency-key-required", "Idempotency-Key required",
            "send an Idempotency-Key header (1-64 printable ASCII characters) with every hold",
            errors=[errors.FieldError(field="Idempotency-Key", detail="missing or invalid")],
        )  # fmt: skip
    body = await webio.read_json(request, model.HoldRequest)
    live = request.app[LIVE]
    for attempt in range(_STALE_RETRIES):
        shape = model.check_shape(body, v.spec, v.kinds)
        if shape is not None and attempt == 0:  # a refusal by cached rules: are they current?
            v = await live.current(v)
            shape = model.check_shape(body, v.spec, v.kinds)
        if shape is not None:
            metrics.SHOP_HOLDS.labels(v.sale, shape.rule).inc()
            field = shape.item or ("packs" if v.spec.phase == "packs" else "items")
            raise errors.invalid_body([errors.FieldError(field=field, detail=shape.detail)])
        answer = await request.app[SHOP].hold(
            v.sale, v.spec.phase, account.id, key, body, version=v.version
        )
        if answer.code != "stale":
            break
        v = await live.reload(v.sale) or v  # the rules changed since this worker read them
    else:
        raise errors.Problem(
            503, "rules-changing", "Sale rules changing",
            "the sale's rules are being changed; try again", retry_after_s=1,
        )  # fmt: skip
    if answer.code != "ok":
        metrics.SHOP_HOLDS.labels(v.sale, answer.code).inc()
        raise refusals.problem(answer.code, v.sale, answer)
    if answer.record:  # a replay: the hold as it is now, as GET answers it
        now = HoldRecord.decode(answer.hold, answer.record)
        if now.state != "held":
            return webio.respond(_hold(v.sale, now))
    held_total, latency = _hold_metrics(v.sale)
    held_total.inc()
    lines = model.merged(body.lines())
    held = model.Hold(
        id=answer.hold,
        sale=v.sale,
        state="held",
        items=[
            model.HoldItem(session=f.partition(":")[0], category=f.partition(":")[2], quantity=q)
            for f, q in lines.items()
        ],
        tickets=sum(lines.values()),
        packs=len(body.packs or ()),
        expires_at=wire.rfc3339(answer.expires_us / US_PER_S),
    )
    latency.observe(time.perf_counter() - started)
    return webio.respond(held, status=201)


_HOLD_METRICS: dict[str, tuple[Any, Any]] = {}


def _hold_metrics(sale: str) -> tuple[Any, Any]:
    """The sale's held counter and latency histogram (label lookups cost a lock each)."""
    found = _HOLD_METRICS.get(sale)
    if found is None:
        found = _HOLD_METRICS[sale] = (
            metrics.SHOP_HOLDS.labels(sale, "held"),
            metrics.SHOP_HOLD_LATENCY.labels(sale),
        )
    return found


async def _own(request: web.Request, sale: str, account: auth.Account) -> HoldRecord:
    r = await request.app[SHOP].record(sale, _hold_id(request))
    if r is None or r.account != account.id:  # another account's hold does not exist for you
        raise errors.not_found("no such hold")
    return r


@openapi.endpoint("One of my holds", response=model.Hold, auth="account", errors=(404,),
                  tags=("shop",))  # fmt: skip
async def show_hold(request: web.Request) -> web.Response:
    sale = _sale_id(request)
    account = account_of(request)
    return webio.respond(_hold(sale, await _own(request, sale, account)))


@openapi.endpoint(
    "Buy a held hold: its seats become sold. Answers once the purchase is on disk (WAITAOF); "
    "idempotent (a confirmed hold answers 200 again)",
    request=model.Confirm,
    response=model.Hold,
    auth="account",
    errors=(404, 409, 503),
    tags=("shop",),
)
async def confirm(request: web.Request) -> web.Response:
    sale = _sale_id(request)
    account = account_of(request)
    hold_id = _hold_id(request)
    body = await webio.read_json(request, model.Confirm)
    timeout_ms = request.app[SETTINGS].shop.confirm_timeout_ms
    try:
        code, record, fsynced = await request.app[SHOP].confirm(
            sale, account.id, hold_id, body.payment_reference, timeout_ms
        )
    except ResponseError as exc:  # WAITAOF without appendonly: purchases cannot be durable
        if "appendonly" not in str(exc).lower():
            raise
        log.error("confirm cannot wait for the AOF", extra={"error": str(exc)[:200]})
        raise errors.Problem(
            503, "durability-unavailable", "Purchases cannot be made durable",
            "the store has no append-only file (appendonly no): confirms are refused",
            retry_after_s=30,
        ) from None  # fmt: skip
    if record is None:
        raise refusals.problem("not_found", sale)
    match code:
        case "not_found" | "expired" | "released":
            raise refusals.problem(code, sale)
        case "ok" | "again":
            pass
        case _:
            assert_never(code)
    if fsynced < 1:
        raise errors.Problem(
            503, "not-durable-yet", "Purchase not on disk yet",
            "the purchase is recorded but not yet on disk; confirm again to get the answer",
            retry_after_s=1,
        )  # fmt: skip
    if code == "ok":
        metrics.SHOP_CONFIRMS.labels(sale).inc()
        metrics.ETICKETS_ISSUED.labels(sale).inc(record.tickets)  # one per seat (eticket/)
    return webio.respond(_hold(sale, record))


@openapi.endpoint(
    "Release one of my holds: its seats go back on sale at once",
    response=model.Hold,
    auth="account",
    errors=(404, 409),
    tags=("shop",),
)
async def release(request: web.Request) -> web.Response:
    sale = _sale_id(request)
    account = account_of(request)
    code, record = await request.app[SHOP].release(sale, account.id, _hold_id(request))
    if record is None:
        raise refusals.problem("not_found", sale)
    match code:
        case "not_found" | "confirmed":
            raise refusals.problem(code, sale)
        case "ok" | "expired" | "released":  # released or expired already: answered as it is
            pass
        case _:
            assert_never(code)
    if code == "ok":
        metrics.SHOP_RELEASES.labels(sale).inc()
    return webio.respond(_hold(sale, record))


@openapi.endpoint(
    "My purchase window, tickets held and bought, and what the quotas still allow",
    response=Me,
    auth="account",
    errors=(404,),
    tags=("shop",),
)
async def me(request: web.Request) -> web.Response:
    v = await _view(request)
    account = account_of(request)
    state, starts, ends = await Draws(request.app[STORE]).window_state(
        v.sale, v.spec.phase, account.id
    )
    tickets, held, packs = await request.app[SHOP].usage(v.sale, account.id)
    return webio.respond(
        Me(
            sale=v.sale,
            phase=v.spec.phase,
            window=model.sale_window(state, starts, ends),
            tickets_held=held,
            tickets_bought=tickets - held,
            packs=packs,
            tickets_left=max(0, v.spec.max_tickets - tickets),
            packs_left=max(0, v.spec.max_packs - packs) if v.spec.phase == "packs" else 0,
        )
    )


# --- admin -------------------------------------------------------------------------------------


@openapi.endpoint(
    "Create or replace a sale's phase, games, purchase period and rules (201 when created); "
    "409 `games-mismatch` if the loaded catalogue is of other games",
    request=model.SaleSpec,
    response=SalePublic,
    status=201,
    also_status=(200,),
    auth="admin",
    scope=SCOPE_WRITE,
    errors=(404, 409),
    tags=("admin",),
)
async def put_sale(request: web.Request) -> web.Response:
    admin = admin_of(request, SCOPE_WRITE)
    sale = _sale_id(request)
    spec = await webio.read_json(request, model.SaleSpec)
    loaded = await request.app[SHOP].sessions(sale)
    other = model.other_games(model.Catalogue(sessions=list(loaded.values())), spec.games)
    if loaded and other is not None:  # a sale sells one games: its catalogue must agree
        raise errors.Problem(
            409, "games-mismatch", "Catalogue of other games",
            f"the loaded catalogue has {other[1].games} session {other[1].id}; this sale "
            f"cannot sell the {spec.games} games",
            errors=[errors.FieldError(field="games", detail="differs from the catalogue's")],
        )  # fmt: skip
    act = await request_act(request, admin.subject, "sale.put", f"sale:{sale}")
    created = await request.app[SHOP].put(sale, spec, act)
    await request.app[LIVE].reload(sale)
    v = await _view(request)
    body = SalePublic(id=sale, spec=spec, sessions=len(v.sessions), seats=v.total)
    return webio.respond(body, status=201 if created else 200)


@openapi.endpoint(
    "Load or update a sale's catalogue, all or nothing (up to 8 MiB of JSON); every session's "
    "`games` must be the sale's",
    request=model.Catalogue,
    response=Loaded,
    auth="admin",
    scope=SCOPE_WRITE,
    errors=(404, 409, 413),
    tags=("admin",),
)
@webio.body_limit(CATALOGUE_MAX_BYTES)
async def put_catalogue(request: web.Request) -> web.Response:
    admin = admin_of(request, SCOPE_WRITE)
    webio.require_json(request)
    v = await _view(request)
    raw = await webio.read_large(request, CATALOGUE_MAX_BYTES)
    catalogue = wire.decode(raw, model.Catalogue)
    other = model.other_games(catalogue, v.spec.games)
    if other is not None:  # a sale sells the sessions of one games (the seed)
        index, s = other
        raise errors.invalid_body([errors.FieldError(
            field=f"sessions[{index}].games",
            detail=f"session {s.id} is {s.games}; sale {v.sale} sells the {v.spec.games} games",
        )])  # fmt: skip
    act = await request_act(request, admin.subject, "sale.catalogue", f"sale:{v.sale}", raw)
    code, detail = await request.app[SHOP].load(v.sale, catalogue, act)
    if code == "below_taken":
        raise refusals.problem(code, v.sale, refusals.Facts(item=detail))
    await request.app[LIVE].reload(v.sale)
    items = sum(len(s.categories) for s in catalogue.sessions)
    seats = sum(c.seats for s in catalogue.sessions for c in s.categories)
    return webio.respond(Loaded(sale=v.sale, sessions=len(catalogue.sessions), items=items,
                               seats=seats))  # fmt: skip


# --- wiring ----------------------------------------------------------------------------------


async def _stock_signal(app: web.Application, sale: str, remaining: float) -> None:
    """Tell the rooms linked to ``sale`` how much stock is left (the pacer meters by it).
    Called every refresh: only a room whose last snapshot shows another level is written to
    (a room just linked or loaded, or one another worker wrote an older reading to)."""
    from guichet.state import ROOMS

    rooms = app.get(ROOMS)
    if rooms is None:
        return
    for room in rooms.ids():
        rt = rooms.get(room)
        if rt is None or rt.spec.sale != sale:
            continue
        if rt.counters is not None and rt.counters.stock_remaining == remaining:
            continue
        await rooms.set_stock(room, remaining)


async def _shop_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[SETTINGS].shop
    shop = app[SHOP] = Shop(app[STORE])
    live = app[LIVE] = Live(shop, cfg.expire_batch)

    async def signal(sale: str, remaining: float) -> None:
        await _stock_signal(app, sale, remaining)

    views = Periodic("sale views", cfg.refresh_interval_s, lambda: live.refresh_all(signal))
    views.start()
    yield
    for v in live.sales.values():
        v.subscribers.clear()
    await views.stop()


def setup(app: web.Application) -> None:
    app.cleanup_ctx.append(_shop_ctx)
    r = app.router
    r.add_get("/v1/sales/{sale}/availability", availability)
    r.add_get("/v1/sales/{sale}/availability/events", availability_events)
    r.add_post("/v1/sales/{sale}/holds", hold)
    r.add_get("/v1/sales/{sale}/holds/{hold}", show_hold)
    r.add_post("/v1/sales/{sale}/holds/{hold}/confirm", confirm)
    r.add_delete("/v1/sales/{sale}/holds/{hold}", release)
    r.add_get("/v1/sales/{sale}/me", me)
    r.add_put("/v1/admin/sales/{sale}", put_sale)
    r.add_put("/v1/admin/sales/{sale}/catalogue", put_catalogue)
