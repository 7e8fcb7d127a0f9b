"""The programme's designation and ticket routes (issue 14 items 5-8): lotteries (operator),
designation from a lottery or by exception, the beneficiary's or leader's commitment and
ticket, withdrawal. The gate's scan of programme tickets is ``POST /v1/admin/gates/scan``
(eticket/service.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from functools import wraps

from aiohttp import web

from guichet import errors, openapi, webio
from guichet.auth import Admin
from guichet.draw import model as draw_model
from guichet.draw import seal
from guichet.eticket.model import pick_format
from guichet.eticket.routes import qr_response
from guichet.programme import designate, identity, lottery, roles, tickets
from guichet.programme.acting import leader_act, operator_act
from guichet.programme.tickets_refusals import Refuse
from guichet.signing import Keyring
from guichet.state import ETICKET_KEYRING, SETTINGS, STORE, account_of, admin_of

SCRIPTS = (*lottery.SCRIPTS, *designate.SCRIPTS, *tickets.SCRIPTS)
SEAL_KEY = web.AppKey("programme_seal_key", bytes)
DRAW_SIGNER = web.AppKey("programme_draw_signer", Keyring)
NAMES = web.AppKey("programme_names", identity.NameBox)
CODE_HEADER = "X-Ticket-Code"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refusals(handler: Handler) -> Handler:
    @wraps(handler)
    async def run(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refuse as exc:
            raise exc.problem() from None

    return run


def _ids(request: web.Request, *names: str) -> list[str]:
    return [webio.slug_param(request, n) for n in names]


def _operator_or_central(request: web.Request, programme: str) -> tuple[Admin, bool]:
    """The programme's operator, else the central role (which is told more)."""
    try:
        return roles.operator(request, programme), False
    except errors.Problem as first:
        try:
            return roles.central(request), True
        except errors.Problem:
            raise first from None


def _tickets(request: web.Request) -> tickets.Tickets:
    app = request.app
    return tickets.Tickets(app[STORE], app[ETICKET_KEYRING], app[SETTINGS].etickets, app[NAMES])


def _caller(request: web.Request, code: str | None) -> tickets.Caller:
    """The beneficiary (link code) or, without one, the group leader (account token)."""
    if code is not None:
        return tickets.Caller(actor="beneficiary", code=code)
    account = account_of(request)
    return tickets.Caller(actor=roles.leader_actor(account.id), leader=account.id)


# --- lotteries ---------------------------------------------------------------------------------


@openapi.endpoint(
    "Create a lottery for one of the programme's allocations (session x category): its "
    "candidates are the eligible ones registered for it until `closes_at`",
    request=lottery.LotteryRequest, response=lottery.Lottery, status=201, auth="admin",
    scope=roles.OPERATE, errors=(403, 404, 409, 422), tags=("programme",),
)  # fmt: skip
@_refusals
async def create_lottery(request: web.Request) -> web.Response:
    (programme,) = _ids(request, "programme")
    admin = roles.operator(request, programme)
    body = await webio.read_json(request, lottery.LotteryRequest)
    acting = await operator_act(request, roles.actor_of(admin), "programme.lottery-create",
                                f"programme:{programme}/lottery:{body.id}")  # fmt: skip
    out = await lottery.create(request.app[STORE], programme, body, acting)
    return webio.respond(out, status=201)


@openapi.endpoint(
    "A lottery: its state, and its commitment (sha256 of the secret seed) once committed",
    response=lottery.Lottery, auth="admin", scope=roles.OPERATE, errors=(403, 404),
    tags=("programme",),
)  # fmt: skip
@_refusals
async def show_lottery(request: web.Request) -> web.Response:
    programme, lot = _ids(request, "programme", "lottery")
    try:
        _operator_or_central(request, programme)
    except errors.Problem:
        admin_of(request, roles.AUDIT)
    return webio.respond(await lottery.show(request.app[STORE], programme, lot))


@openapi.endpoint(
    "Commit the lottery to a sealed secret seed before its candidate list closes",
    response=lottery.Lottery, auth="admin", scope=roles.OPERATE, errors=(403, 404, 409),
    tags=("programme",),
)  # fmt: skip
@_refusals
async def commit_lottery(request: web.Request) -> web.Response:
    programme, lot = _ids(request, "programme", "lottery")
    admin = roles.operator(request, programme)
    acting = await operator_act(request, roles.actor_of(admin), "programme.lottery-commit",
                                f"programme:{programme}/lottery:{lot}")  # fmt: skip
    out = await lottery.commit(request.app[STORE], request.app[SEAL_KEY], programme, lot, acting)
    return webio.respond(out)


@openapi.endpoint(
    "Run the lottery after its close, with a public beacon: the ranking is stored and the "
    "signed transcript returned (a lottery that ran answers its transcript)",
    request=lottery.RunRequest, response=draw_model.Transcript, auth="admin",
    scope=roles.OPERATE, errors=(403, 404, 409), tags=("programme",),
)  # fmt: skip
@_refusals
async def run_lottery(request: web.Request) -> web.Response:
    programme, lot = _ids(request, "programme", "lottery")
    admin = roles.operator(request, programme)
    body = await webio.read_json(request, lottery.RunRequest)
    acting = await operator_act(request, roles.actor_of(admin), "programme.lottery-run",
                                f"programme:{programme}/lottery:{lot}")  # fmt: skip
    app = request.app
    out = await lottery.run(app[STORE], app[SEAL_KEY], app[DRAW_SIGNER], programme, lot,
                            body.beacon_text.encode(), acting)  # fmt: skip
    return webio.respond(out)


@openapi.endpoint(
    "Give tickets from the lottery's ranking while the programme's allocation lasts, skipping "
    "anyone who already benefits from another programme of the games",
    request=designate.AssignRequest, response=designate.Assigned, auth="admin",
    scope=roles.OPERATE, errors=(403, 404, 409), tags=("programme",),
)  # fmt: skip
@_refusals
async def assign(request: web.Request) -> web.Response:
    programme, lot = _ids(request, "programme", "lottery")
    admin = roles.operator(request, programme)
    body = await webio.read_json(request, designate.AssignRequest)
    acting = await operator_act(request, roles.actor_of(admin), "programme.lottery-assign",
                                f"programme:{programme}/lottery:{lot}")  # fmt: skip
    out = await designate.assign(request.app[STORE], programme, lot, acting, body.max)
    return webio.respond(out)


@openapi.endpoint(
    "Designate a candidate without lottery, with a written justification recorded in the "
    "programme's exceptions register. A double benefit names the other programme only to the "
    "central role",
    request=designate.DesignationRequest, response=designate.Designated, status=201,
    auth="admin", scope=roles.OPERATE, errors=(403, 404, 409, 422), tags=("programme",),
)  # fmt: skip
@_refusals
async def designation(request: web.Request) -> web.Response:
    (programme,) = _ids(request, "programme")
    admin, central = _operator_or_central(request, programme)
    body = await webio.read_json(request, designate.DesignationRequest)
    acting = await operator_act(request, roles.actor_of(admin), "programme.designate",
                                f"programme:{programme}/candidate")  # fmt: skip
    out = await designate.designate(request.app[STORE], programme, body, acting, central=central)
    return webio.respond(out, status=201)


# --- tickets -----------------------------------------------------------------------------------


@openapi.endpoint(
    "The beneficiary (`code` from the link) or their group's leader (account token; another "
    "group's leader: 403 `not-your-group`) accepts the charter and commits to attend; a minor "
    "without a guardian's consent: 409 `guardian-consent-required`. Answers the nominative "
    "ticket",
    request=tickets.CommitRequest, response=tickets.ProgrammeTicket,
    errors=(401, 403, 404, 409, 422),
    tags=("programme",),
)  # fmt: skip
@_refusals
async def commit_ticket(request: web.Request) -> web.Response:
    programme = webio.slug_param(request, "programme")
    ticket = request.match_info["ticket"]
    body = await webio.read_json(request, tickets.CommitRequest)
    caller = _caller(request, body.code)
    out = await _tickets(request).commit(programme, ticket, caller, body.charter_version)
    return webio.respond(out, headers={"Cache-Control": "private, no-store"})


@openapi.endpoint(
    "A programme ticket for its beneficiary (header `X-Ticket-Code`: the link's code) or their "
    "group's leader (account token): JSON, or its QR code as SVG or PNG once committed",
    response=tickets.ProgrammeTicket, also=("image/svg+xml", "image/png"),
    query=(("format", {"type": "string", "enum": ["json", "svg", "png"]}),),
    headers=(openapi.Header(CODE_HEADER, "The code of the beneficiary's link",
                            schema={"type": "string", "maxLength": 64}),),
    errors=(401, 403, 404, 409, 422), tags=("programme",),
)  # fmt: skip
@_refusals
async def show_ticket(request: web.Request) -> web.Response:
    programme = webio.slug_param(request, "programme")
    fmt = pick_format(request.query.get("format"), request.headers.get("Accept"))
    if fmt is None:
        raise errors.invalid_body(
            [errors.FieldError(field="format", detail="must be json, svg or png")],
            "`format` must be json, svg or png",
        )
    caller = _caller(request, request.headers.get(CODE_HEADER))
    out = await _tickets(request).view(programme, request.match_info["ticket"], caller)
    headers = {"Cache-Control": "private, no-store"}
    if fmt == "json":
        return webio.respond(out, headers=headers)
    if out.payload is None:
        raise Refuse("not_committed_ticket", "accept the charter and commit to attend first")
    return qr_response(out.payload, fmt, headers)


@openapi.endpoint(
    "The beneficiary (`code`) or their group's leader (account token) withdraws, until 23:59 "
    "Paris on the eve of the session (else 409 `too-late`): the ticket is voided and given to "
    "the next candidate of the lottery's ranking, or returned to the central pool",
    request=tickets.WithdrawRequest, response=tickets.Withdrawal, errors=(401, 403, 404, 409, 422),
    tags=("programme",),
)  # fmt: skip
@_refusals
async def withdraw(request: web.Request) -> web.Response:
    programme = webio.slug_param(request, "programme")
    body = await webio.read_json(request, tickets.WithdrawRequest)
    caller = _caller(request, body.code)
    ticket = request.match_info["ticket"]
    acting = await leader_act(request, caller.actor, "programme.withdraw",
                              f"programme:{programme}/ticket:{ticket}")  # fmt: skip
    caller = dataclasses.replace(caller, acting=acting)
    out = await _tickets(request).withdraw(programme, ticket, caller)
    return webio.respond(out)


@openapi.endpoint(
    "The programme's operator withdraws a beneficiary's ticket (as the beneficiary may)",
    response=tickets.Withdrawal, auth="admin", scope=roles.OPERATE, errors=(403, 404, 409),
    tags=("programme",),
)  # fmt: skip
@_refusals
async def operator_withdraw(request: web.Request) -> web.Response:
    programme = webio.slug_param(request, "programme")
    admin = roles.operator(request, programme)
    ticket = request.match_info["ticket"]
    acting = await operator_act(request, roles.actor_of(admin), "programme.withdraw",
                                f"programme:{programme}/ticket:{ticket}")  # fmt: skip
    caller = tickets.Caller(actor=roles.actor_of(admin), acting=acting)
    out = await _tickets(request).withdraw(programme, ticket, caller)
    return webio.respond(out)


@openapi.endpoint(
    "The programme's operator reads a beneficiary's ticket (with the printed name once "
    "committed): the only reader of a name besides the ticket's own holder",
    response=tickets.ProgrammeTicket, auth="admin", scope=roles.OPERATE, errors=(403, 404),
    tags=("programme",),
)  # fmt: skip
@_refusals
async def operator_ticket(request: web.Request) -> web.Response:
    programme = webio.slug_param(request, "programme")
    admin = roles.operator(request, programme)
    ticket = request.match_info["ticket"]
    acting = await operator_act(request, roles.actor_of(admin), "programme.ticket-read",
                                f"programme:{programme}/ticket:{ticket}")  # fmt: skip
    caller = tickets.Caller(actor=roles.actor_of(admin), acting=acting)
    out = await _tickets(request).view(programme, ticket, caller)
    return webio.respond(out, headers={"Cache-Control": "private, no-store"})


def setup(app: web.Application) -> None:
    """Routes, and the keys they use (read here, outside the event loop)."""
    settings = app[SETTINGS]
    app[SEAL_KEY] = seal.seal_key(settings.draws)
    app[DRAW_SIGNER] = Keyring(settings.draws.signing_key_dir)
    app[NAMES] = identity.name_box(settings.programme)
    r = app.router
    admin = "/v1/admin/programmes/{programme}"
    r.add_post(f"{admin}/lotteries", create_lottery)
    r.add_get(f"{admin}/lotteries/{{lottery}}", show_lottery)
    r.add_post(f"{admin}/lotteries/{{lottery}}/commit", commit_lottery)
    r.add_post(f"{admin}/lotteries/{{lottery}}/run", run_lottery)
    r.add_post(f"{admin}/lotteries/{{lottery}}/assign", assign)
    r.add_post(f"{admin}/designations", designation)
    r.add_get(f"{admin}/tickets/{{ticket}}", operator_ticket)
    r.add_post(f"{admin}/tickets/{{ticket}}/withdraw", operator_withdraw)
    public = "/v1/programmes/{programme}/tickets/{ticket}"
    r.add_get(public, show_ticket)
    r.add_post(f"{public}/commit", commit_ticket)
    r.add_post(f"{public}/withdraw", withdraw)
