"""The programme's people routes: candidates (by the programme's operator, or by a group's
leader with its account token), groups and their leaders, mobility counts, guardian and reuse
consent, the export of reuse consents, the purge of names.

A candidate's pseudonym is returned (operators refer to a candidate by it afterwards); the
name is never returned by these routes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Literal

from aiohttp import web

from guichet import errors, metrics, openapi, webio, wire
from guichet.programme import identity, people, roles
from guichet.programme.acting import Acting, leader_act, operator_act
from guichet.programme.people_refusals import PeopleRefused
from guichet.programme.people_service import SCRIPTS as SERVICE_SCRIPTS
from guichet.programme.people_service import People, Registered
from guichet.state import SETTINGS, STORE, account_of
from guichet.units import US_PER_S

SCRIPTS = SERVICE_SCRIPTS
PEOPLE = web.AppKey("programme_people", People)
_KEYS = web.AppKey("programme_people_keys", tuple)  # (pseudonym secret, name box), read once
TAGS = ("programme",)


class Registration(wire.Reply, kw_only=True):
    """A registered candidate: its pseudonym (what operators refer to), never its name."""

    programme: str
    pseudonym: str
    lottery: str
    group: str | None = None
    #: Under 18 on the lottery's session day: a guardian's consent is needed before a ticket.
    minor: bool
    guardian_consent: Literal["given", "missing", "not-needed"]
    reuse_consent: bool


class CandidateView(wire.Reply, kw_only=True):
    """A candidate as its programme's operator sees it (no name: the name is only printed on
    the ticket)."""

    programme: str
    pseudonym: str
    lottery: str
    group: str | None = None
    criteria: list[str]
    state: str
    consent_version: str
    consent_at: str
    guardian: bool
    reuse_consent: str | None = None
    name_held: bool


class Group(wire.Reply, kw_only=True):
    programme: str
    id: str
    leader: str
    mobility_needs: int
    by: str
    at: str


class ReuseConsentItem(wire.Reply, kw_only=True):
    pseudonym: str
    version: str
    at: str


class ReuseConsents(wire.Reply, kw_only=True):
    """The candidates who gave consent to reuse their data and did not object since."""

    programme: str
    count: int
    candidates: list[ReuseConsentItem]


class Purged(wire.Reply, kw_only=True):
    programme: str
    purged: int


def _at(value_us: int) -> str:
    return wire.rfc3339(value_us / US_PER_S)


def _programme(request: web.Request) -> str:
    return webio.slug_param(request, "programme")


def _person(request: web.Request) -> str:
    value = request.match_info["pseudonym"]
    if not re.fullmatch(people.PSEUDONYM, value):
        raise errors.not_found("no such candidate in this programme")
    return value


async def _acting(
    request: web.Request, actor: str, leader: str | None, action: str, object: str
) -> Acting:
    """The act of an operator (declaration checked) or of a group leader (not)."""
    if leader is None:
        return await operator_act(request, actor, action, object)
    return await leader_act(request, actor, action, object)


def _registration(programme: str, r: Registered) -> Registration:
    needed = r.minor
    consent = "given" if r.record.guardian else ("missing" if needed else "not-needed")
    return Registration(
        programme=programme, pseudonym=r.pseudonym, lottery=r.record.lottery,
        group=r.record.group, minor=r.minor,
        guardian_consent=consent,  # type: ignore[arg-type]
        reuse_consent=r.record.reuse is not None,
    )  # fmt: skip


def _candidate(programme: str, person: str, r: people.CandidateRecord) -> CandidateView:
    return CandidateView(
        programme=programme, pseudonym=person, lottery=r.lottery, group=r.group,
        criteria=r.criteria, state=r.state,
        consent_version=r.consent.version, consent_at=_at(r.consent.at),
        guardian=r.guardian is not None,
        reuse_consent=None if r.reuse is None else r.reuse.version, name_held=r.name is not None,
    )  # fmt: skip


def _group(programme: str, group: str, g: people.GroupRecord) -> Group:
    return Group(programme=programme, id=group, leader=g.leader, mobility_needs=g.mobility_needs,
                 by=g.by, at=_at(g.at))  # fmt: skip


async def _register(
    request: web.Request, programme: str, actor: str, leader: str | None, group: str | None
) -> web.Response:
    try:
        body = await webio.read_json(request, people.Candidate)
        acting = await _acting(request, actor, leader, "programme.register",
                               f"programme:{programme}/candidate")  # fmt: skip
        r = await request.app[PEOPLE].register(programme, body, acting, leader=leader, group=group)
    except PeopleRefused as refused:
        metrics.PROGRAMME_REGISTRATION_REFUSALS.labels(refused.code).inc()
        raise refused.problem() from None
    except errors.Problem as problem:
        if 400 <= problem.status < 500 and problem.status not in (401, 403):
            metrics.PROGRAMME_REGISTRATION_REFUSALS.labels("invalid").inc()
        raise
    metrics.PROGRAMME_CANDIDATES.labels(programme).inc()
    return webio.respond(_registration(programme, r), status=201)


_REGISTER_ERRORS = (400, 403, 404, 409, 415, 422)


@openapi.endpoint(
    "Register an eligible candidate (the operator attests every eligibility criterion of the "
    "programme; consent recorded; a minor's guardian consent now or later). Identity fields "
    "become a keyed pseudonym and an encrypted printed name; the birth date and the plain names "
    "are not stored. 409 `already-registered` if the person is a candidate of this programme",
    request=people.Candidate, response=Registration, status=201, auth="admin",
    scope=roles.OPERATE, errors=_REGISTER_ERRORS, tags=TAGS,
)  # fmt: skip
async def register(request: web.Request) -> web.Response:
    programme = _programme(request)
    admin = roles.operator(request, programme)
    return await _register(request, programme, roles.actor_of(admin), None, None)


@openapi.endpoint(
    "A group leader registers a candidate of its group (account token of the invited leader; "
    "403 `not-your-group` otherwise); as the operator's registration",
    request=people.Candidate, response=Registration, status=201, auth="account",
    errors=_REGISTER_ERRORS, tags=TAGS,
)  # fmt: skip
async def leader_register(request: web.Request) -> web.Response:
    programme = _programme(request)
    group = webio.slug_param(request, "group")
    account = account_of(request)
    actor = roles.leader_actor(account.id)
    return await _register(request, programme, actor, account.id, group)


def _refused(refused: PeopleRefused) -> errors.Problem:
    return refused.problem()


@openapi.endpoint(
    "One candidate of the programme, by pseudonym (its consents and state; never the name)",
    response=CandidateView, auth="admin", scope=roles.OPERATE, errors=(403, 404), tags=TAGS,
)  # fmt: skip
async def show_candidate(request: web.Request) -> web.Response:
    programme = _programme(request)
    admin = roles.operator(request, programme)
    person = _person(request)
    acting = await operator_act(request, roles.actor_of(admin), "programme.candidate-read",
                                f"programme:{programme}/candidate")  # fmt: skip
    try:
        record = await request.app[PEOPLE].candidate(programme, person, acting)
    except PeopleRefused as refused:
        raise _refused(refused) from None
    return webio.respond(_candidate(programme, person, record))


async def _guardian(
    request: web.Request, programme: str, actor: str, leader: str | None, group: str | None
) -> web.Response:
    person = _person(request)
    body = await webio.read_json(request, people.Guardian)
    acting = await _acting(request, actor, leader, "programme.guardian",
                           f"programme:{programme}/candidate")  # fmt: skip
    try:
        record = await request.app[PEOPLE].guardian(programme, person, body, acting,
                                                    leader=leader, group=group)  # fmt: skip
    except PeopleRefused as refused:
        raise _refused(refused) from None
    return webio.respond(_candidate(programme, person, record))


@openapi.endpoint(
    "Record a minor's legal guardian's consent (relationship, time, who collected it) for a "
    "candidate, once (409 `guardian-recorded` after)",
    request=people.Guardian, response=CandidateView, auth="admin", scope=roles.OPERATE,
    errors=(403, 404, 409, 415, 422), tags=TAGS,
)  # fmt: skip
async def guardian(request: web.Request) -> web.Response:
    programme = _programme(request)
    actor = roles.actor_of(roles.operator(request, programme))
    return await _guardian(request, programme, actor, None, None)


@openapi.endpoint(
    "A group leader records the guardian's consent of a candidate of its group",
    request=people.Guardian, response=CandidateView, auth="account",
    errors=(403, 404, 409, 415, 422), tags=TAGS,
)  # fmt: skip
async def leader_guardian(request: web.Request) -> web.Response:
    programme = _programme(request)
    group = webio.slug_param(request, "group")
    account = account_of(request)
    return await _guardian(request, programme, roles.leader_actor(account.id), account.id, group)


@openapi.endpoint(
    "Record a candidate's consent to the reuse of its data for a later message (CNIL "
    "recommendation 4): separate, optional, revocable",
    request=people.ReuseConsent, response=CandidateView, auth="admin", scope=roles.OPERATE,
    errors=(403, 404, 415, 422), tags=TAGS,
)  # fmt: skip
async def give_reuse(request: web.Request) -> web.Response:
    programme = _programme(request)
    admin = roles.operator(request, programme)
    person = _person(request)
    body = await webio.read_json(request, people.ReuseConsent)
    acting = await operator_act(request, roles.actor_of(admin), "programme.reuse-consent",
                                f"programme:{programme}/candidate")  # fmt: skip
    try:
        record = await request.app[PEOPLE].reuse(programme, person, body.version, acting)
    except PeopleRefused as refused:
        raise _refused(refused) from None
    return webio.respond(_candidate(programme, person, record))


@openapi.endpoint(
    "The candidate objects to the reuse of its data (consent to reuse withdrawn); idempotent",
    response=CandidateView, auth="admin", scope=roles.OPERATE, errors=(403, 404), tags=TAGS,
)  # fmt: skip
async def revoke_reuse(request: web.Request) -> web.Response:
    programme = _programme(request)
    admin = roles.operator(request, programme)
    person = _person(request)
    acting = await operator_act(request, roles.actor_of(admin), "programme.reuse-consent",
                                f"programme:{programme}/candidate")  # fmt: skip
    try:
        record = await request.app[PEOPLE].reuse(programme, person, None, acting)
    except PeopleRefused as refused:
        raise _refused(refused) from None
    return webio.respond(_candidate(programme, person, record))


@openapi.endpoint(
    "The pseudonyms of the candidates who consented to the reuse of their data and did not "
    "object since (for a later message; nothing else about them)",
    response=ReuseConsents, auth="admin", scope=roles.OPERATE, errors=(403, 404), tags=TAGS,
)  # fmt: skip
async def reuse_consents(request: web.Request) -> web.Response:
    programme = _programme(request)
    admin = roles.operator(request, programme)
    acting = await operator_act(request, roles.actor_of(admin), "programme.reuse-consents-read",
                                f"programme:{programme}")  # fmt: skip
    rows: list[ReuseConsentItem] = []
    try:
        async for row in request.app[PEOPLE].reuse_consents(programme, acting):
            rows.append(ReuseConsentItem(pseudonym=row.pseudonym, version=row.version,
                                         at=_at(row.at_us)))  # fmt: skip
    except PeopleRefused as refused:
        raise _refused(refused) from None
    rows.sort(key=lambda r: r.pseudonym)
    return webio.respond(ReuseConsents(programme=programme, count=len(rows), candidates=rows))


@openapi.endpoint(
    "Invite a group leader: the account becomes the leader of a new group of the programme "
    "(201; the same invitation again answers 200); one group per leader",
    request=people.Invite, response=Group, status=201, auth="admin", scope=roles.OPERATE,
    errors=(403, 404, 409, 415, 422), tags=TAGS,
)  # fmt: skip
async def invite(request: web.Request) -> web.Response:
    programme = _programme(request)
    admin = roles.operator(request, programme)
    body = await webio.read_json(request, people.Invite)
    acting = await operator_act(request, roles.actor_of(admin), "programme.group",
                                f"programme:{programme}/group:{body.id}")  # fmt: skip
    try:
        created, g = await request.app[PEOPLE].invite(programme, body, acting)
    except PeopleRefused as refused:
        raise _refused(refused) from None
    return webio.respond(_group(programme, body.id, g), status=201 if created else 200)


async def _mobility(
    request: web.Request, programme: str, actor: str, leader: str | None
) -> web.Response:
    group = webio.slug_param(request, "group")
    body = await webio.read_json(request, people.Mobility)
    acting = await _acting(request, actor, leader, "programme.mobility",
                           f"programme:{programme}/group:{group}")  # fmt: skip
    try:
        g = await request.app[PEOPLE].mobility(programme, group, body.count, acting, leader)
    except PeopleRefused as refused:
        raise _refused(refused) from None
    return webio.respond(_group(programme, group, g))


_MOBILITY = (
    "Set a group's mobility needs as one count for the whole group — never per person (CNIL "
    "recommendation 2: \u00ab ne collecter que le nombre de personnes ayant des besoins "
    "sp\u00e9cifiques sans que l'identit\u00e9 de celles-ci ne soit renseign\u00e9e \u00bb)"
)


@openapi.endpoint(_MOBILITY + "; by the group's leader (account token)",
                  request=people.Mobility, response=Group, auth="account",
                  errors=(403, 404, 415, 422), tags=TAGS)  # fmt: skip
async def leader_mobility(request: web.Request) -> web.Response:
    programme = _programme(request)
    account = account_of(request)
    return await _mobility(request, programme, roles.leader_actor(account.id), account.id)


@openapi.endpoint(_MOBILITY + "; by the programme's operator", request=people.Mobility,
                  response=Group, auth="admin", scope=roles.OPERATE,
                  errors=(403, 404, 415, 422), tags=TAGS)  # fmt: skip
async def operator_mobility(request: web.Request) -> web.Response:
    programme = _programme(request)
    admin = roles.operator(request, programme)
    return await _mobility(request, programme, roles.actor_of(admin), None)


@openapi.endpoint(
    "Erase the printed names of the programme's candidates once its retention date is over "
    "(the end of `retention_until`, Paris time); 409 `retention-not-over` before. Idempotent",
    response=Purged, auth="admin", scope=roles.CENTRAL, errors=(403, 404, 409), tags=TAGS,
)  # fmt: skip
async def purge(request: web.Request) -> web.Response:
    admin = roles.central(request)
    programme = _programme(request)
    acting = await operator_act(request, roles.actor_of(admin), "programme.purge",
                                f"programme:{programme}")  # fmt: skip
    try:
        purged = await request.app[PEOPLE].purge(programme, acting)
    except PeopleRefused as refused:
        raise _refused(refused) from None
    metrics.PROGRAMME_NAMES_PURGED.labels(programme).inc(purged)
    return webio.respond(Purged(programme=programme, purged=purged))


async def _people_ctx(app: web.Application) -> AsyncIterator[None]:
    secret, box = app[_KEYS]
    app[PEOPLE] = People(app[STORE], secret, box)
    yield


def setup(app: web.Application) -> None:
    """Read the programme's keys (outside the event loop: they may be files) and add the
    routes."""
    cfg = app[SETTINGS].programme
    app[_KEYS] = (identity.pseudonym_secret(cfg), identity.name_box(cfg))
    app.cleanup_ctx.append(_people_ctx)
    r = app.router
    admin = "/v1/admin/programmes/{programme}"
    r.add_post(f"{admin}/candidates", register)
    r.add_get(f"{admin}/candidates/{{pseudonym}}", show_candidate)
    r.add_put(f"{admin}/candidates/{{pseudonym}}/guardian", guardian)
    r.add_put(f"{admin}/candidates/{{pseudonym}}/reuse-consent", give_reuse)
    r.add_delete(f"{admin}/candidates/{{pseudonym}}/reuse-consent", revoke_reuse)
    r.add_get(f"{admin}/reuse-consents", reuse_consents)
    r.add_post(f"{admin}/groups", invite)
    r.add_put(f"{admin}/groups/{{group}}/mobility", operator_mobility)
    r.add_post(f"{admin}/purge", purge)
    public = "/v1/programmes/{programme}/groups/{group}"
    r.add_post(f"{public}/candidates", leader_register)
    r.add_put(f"{public}/candidates/{{pseudonym}}/guardian", leader_guardian)
    r.add_put(f"{public}/mobility", leader_mobility)
