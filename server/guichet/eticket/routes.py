"""HTTP routes of e-tickets: the buyer's tickets (JSON, SVG or PNG QR code) and the gate's
scan (admin scope ``gates:scan``)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Literal

import segno
from aiohttp import web

from guichet import errors, metrics, openapi, webio, wire
from guichet.audit.web import request_act
from guichet.background import Periodic
from guichet.eticket import model
from guichet.eticket.service import Etickets, Issued, ScanRefused
from guichet.refusals import Explained, Explaining, check_complete
from guichet.signing import Keyring
from guichet.state import ETICKET_KEYRING, ETICKETS, SETTINGS, STORE, account_of, admin_of
from guichet.units import US_PER_S

SCOPE_SCAN = "gates:scan"
KEY_REFRESH_S = 5.0


def _ticket(i: Issued) -> model.Ticket:
    s = i.seat
    return model.Ticket(
        id=s.id, sale=s.sale, session=s.session, category=s.category, account=s.account,
        hold=s.hold, state="used" if i.used else "valid", payload=i.payload,
        used_at=wire.rfc3339(i.used[0] / US_PER_S) if i.used else None,
        gate=i.used[1] if i.used else None,
    )  # fmt: skip


@openapi.endpoint(
    "My e-tickets in this sale: one per seat of each confirmed purchase, with its signed "
    "payload (what the QR code holds) and whether a gate has scanned it",
    response=model.Tickets,
    auth="account",
    errors=(404,),
    tags=("tickets",),
)
async def my_tickets(request: web.Request) -> web.Response:
    sale = webio.slug_param(request, "sale")
    account = account_of(request)
    issued = await request.app[ETICKETS].of_account(sale, account.id)
    return webio.respond(model.Tickets(sale=sale, tickets=[_ticket(i) for i in issued]),
                         headers={"Cache-Control": "private, no-store"})  # fmt: skip


@openapi.endpoint(
    "One of my e-tickets: JSON, or its QR code as SVG or PNG (`?format=svg|png`, or an "
    "`Accept: image/svg+xml` / `image/png` header)",
    response=model.Ticket,
    also=("image/svg+xml", "image/png"),
    query=(("format", {"type": "string", "enum": ["json", "svg", "png"]}),),
    auth="account",
    errors=(404, 422),
    tags=("tickets",),
)
async def my_ticket(request: web.Request) -> web.Response:
    sale = webio.slug_param(request, "sale")
    account = account_of(request)
    fmt = model.pick_format(request.query.get("format"), request.headers.get("Accept"))
    if fmt is None:
        raise errors.invalid_body(
            [errors.FieldError(field="format", detail="must be json, svg or png")],
            "`format` must be json, svg or png",
        )
    issued = await request.app[ETICKETS].one(sale, account.id, request.match_info["ticket"])
    if issued is None:  # another account's ticket does not exist for you
        raise errors.not_found("no such ticket")
    headers = {"Cache-Control": "private, no-store"}
    if fmt == "json":
        return webio.respond(_ticket(issued), headers=headers)
    return qr_response(issued.payload, fmt, headers)


def qr_response(payload: str, kind: Literal["svg", "png"], headers: dict[str, str]) -> web.Response:
    """A ticket's payload as a QR code image (error correction M: readable on a scuffed phone
    screen); the State programme's tickets use it too."""
    buf = io.BytesIO()
    segno.make_qr(payload, error="m").save(buf, kind=kind, scale=4, border=4)
    content_type = "image/svg+xml" if kind == "svg" else "image/png"
    return web.Response(body=buf.getvalue(), content_type=content_type, headers=headers)


# --- the gate ----------------------------------------------------------------------------------


def _refused(status: int, slug: str, title: str, detail: str) -> Explaining[model.Scanned | None]:
    return Explaining(status, slug, title, lambda _gate, _s: Explained(
        detail, errors=[errors.FieldError(field="payload", detail=detail)]))  # fmt: skip


def _used(gate: str, first: model.Scanned | None) -> Explained:
    assert first is not None
    return Explained(
        f"ticket {first.ticket} was scanned at gate {first.gate} at {first.used_at}",
        context={"ticket": first.ticket, "used_at": first.used_at, "gate": first.gate},
    )


SCAN_REFUSALS: dict[ScanRefused, Explaining[model.Scanned | None]] = {
    "malformed": _refused(422, "ticket-invalid", "Not a ticket", "not a ticket payload"),
    "forged": _refused(422, "ticket-invalid", "Not a ticket",
                       "the payload's signature does not verify with our ticket keys"),
    "expired": _refused(422, "ticket-expired", "Ticket expired", "this ticket has expired"),
    "unknown": _refused(404, "ticket-unknown", "No such ticket",
                        "no confirmed purchase holds this ticket"),
    "already_used": Explaining(409, "already-used", "Ticket already used", _used),
}  # fmt: skip
check_complete(SCAN_REFUSALS, ScanRefused, "eticket")


@openapi.endpoint(
    "A gate scans a ticket: the payload's signature is checked and the ticket marked used, "
    "exactly once (a second scan: 409 `already-used` with when and at which gate)",
    request=model.ScanRequest,
    response=model.Scanned,
    auth="admin",
    scope=SCOPE_SCAN,
    errors=(404, 409),
    tags=("admin",),
)
async def scan(request: web.Request) -> web.Response:
    admin = admin_of(request, SCOPE_SCAN)
    body = await webio.read_json(request, model.ScanRequest)
    act = await request_act(request, admin.subject, "gate.scan", "")  # object: the ticket's sale
    code, seat, used = await request.app[ETICKETS].scan(body.payload, body.gate, act)
    scanned = None
    if seat is not None and used is not None:
        scanned = model.Scanned(
            ticket=seat.id, sale=seat.sale or None, programme=seat.programme or None,
            session=seat.session, category=seat.category, account=seat.account or None,
            used_at=wire.rfc3339(used[0] / US_PER_S), gate=used[1],
        )  # fmt: skip
    if code != "ok":
        metrics.ETICKET_SCANS.labels("refused").inc()
        metrics.ETICKET_SCAN_REFUSALS.labels(code).inc()
        raise SCAN_REFUSALS[code].problem(body.gate, scanned)
    assert scanned is not None
    metrics.ETICKET_SCANS.labels("accepted").inc()
    return webio.respond(scanned)


# --- wiring ------------------------------------------------------------------------------------


async def _etickets_ctx(app: web.Application) -> AsyncIterator[None]:
    keyring = app[ETICKET_KEYRING]
    app[ETICKETS] = Etickets(app[STORE], keyring, app[SETTINGS].etickets)

    async def refresh() -> None:  # a rotated key signs from here on (file reads: a thread)
        await asyncio.to_thread(keyring.refresh)

    keys = Periodic("e-ticket keys", KEY_REFRESH_S, refresh)
    keys.start()
    yield
    await keys.stop()


def setup(app: web.Application) -> None:
    """Routes and the ticket keyring (read here, outside the event loop)."""
    cfg = app[SETTINGS].etickets
    app[ETICKET_KEYRING] = Keyring(cfg.signing_key_dir, max_ttl_s=cfg.valid_days * 24 * 3600)
    app.cleanup_ctx.append(_etickets_ctx)
    r = app.router
    r.add_get("/v1/sales/{sale}/tickets", my_tickets)
    r.add_get("/v1/sales/{sale}/tickets/{ticket}", my_ticket)
    r.add_post("/v1/admin/gates/scan", scan)
