"""The data protection officer's routes (scope ``privacy:dpo``): a person's access export and
the erasure of a candidacy (docs/privacy.md). The names are opened only in the export, for the
person who asked; the audit records carry the object ``privacy:person`` or
``programme:<P>/candidate`` and the request's keyed digest, never the person."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from guichet import errors, openapi, webio, wire
from guichet.audit.web import request_act
from guichet.privacy import note, sale, service
from guichet.programme import cache, identity, people
from guichet.state import SETTINGS, STORE, admin_of
from guichet.units import US_PER_S

SCOPE = "privacy:dpo"
TAGS = ("privacy",)
SCRIPTS = (*service.SCRIPTS, *note.SCRIPTS)
_KEYS = web.AppKey("privacy_keys", tuple)  # (pseudonym secret, name box), read once


class Identity(wire.Base, kw_only=True):
    """Who the person is: the identity fields registration takes (people.Candidate)."""

    family_name: people.Name
    given_names: people.Name
    birth_date: date


class AccessRequest(wire.Base, kw_only=True):
    """The person's identity fields (all three, for the State programme) and/or an account id
    (the public sale's draw entries, restricted-strata memberships, windows, purchases,
    e-tickets; the programme's groups it leads, its acts as their leader, its notices)."""

    family_name: people.Name | None = None
    given_names: people.Name | None = None
    birth_date: date | None = None
    account: people.Account | None = None


class Erasure(Identity, kw_only=True):
    """Erase the person's candidacy in this programme."""

    programme: wire.Slug


class Consent(wire.Reply, kw_only=True):
    version: str
    at: str
    by: str


class Guardian(wire.Reply, kw_only=True):
    relationship: str
    name: str | None = None
    by: str
    at: str


class Reuse(wire.Reply, kw_only=True):
    version: str
    at: str


class HeldTicket(wire.Reply, kw_only=True):
    id: str
    session: str
    category: str
    state: str
    charter: str | None = None
    at: str
    scanned: str | None = None


class Candidacy(wire.Reply, kw_only=True):
    """One candidacy as stored, the sealed names opened (null once purged)."""

    games: str
    programme: str
    name: str | None = None
    lottery: str
    lottery_state: str | None = None
    #: 0-based rank in the lottery's ranking once it ran.
    rank: int | None = None
    group: str | None = None
    group_leader: str | None = None
    group_mobility_needs: int | None = None
    criteria: list[str]
    eligible: bool
    majority_on: str | None = None
    consent: Consent
    guardian: Guardian | None = None
    reuse_consent: Reuse | None = None
    state: str
    registered_by: str
    registered_at: str
    ticket: HeldTicket | None = None
    #: The programme holding the person's benefit in these games (seed §1: at most one).
    benefit: str | None = None
    #: Entries of the exceptions register naming them (justification included).
    exceptions: list[dict[str, str]] = []
    #: Notices of the outbox about their ticket.
    notices: list[dict[str, str]] = []


class Declared(wire.Reply, kw_only=True):
    """A conflict-of-interest declaration (AFA) in which an agent names the person: when it
    was filed and until when it holds (the agent, a third party, is not named)."""

    games: str
    at: str
    until: str


class AccessExport(wire.Reply, kw_only=True):
    #: Set when the identity fields were given.
    pseudonym: str | None = None
    candidacies: list[Candidacy] = []
    #: Declarations naming the person among an agent's conflicts of interest.
    declarations: list[Declared] = []
    #: Set when an account was given and something is stored about it.
    account: sale.AccountExport | None = None


class Erased(wire.Reply, kw_only=True):
    programme: str
    erased: bool


def _at(value_us: int) -> str:
    return wire.rfc3339(value_us / US_PER_S)


def _field(field: str, detail: str) -> errors.Problem:
    return errors.invalid_body([errors.FieldError(field=field, detail=detail)])


def pseudonym_of(secret: bytes, family: str, given: str, birth: date) -> str:
    """The person's pseudonym, or 422 naming the field that cannot be theirs."""
    for field, value in (("family_name", family), ("given_names", given)):
        if not identity.normalise(value):
            raise _field(field, "has no letters")
    if birth < people.EARLIEST:
        raise _field("birth_date", "must be a past date")
    return identity.pseudonym(secret, family, given, birth)


def _person(request: web.Request, body: Identity) -> str:
    secret: bytes = request.app[_KEYS][0]
    return pseudonym_of(secret, body.family_name, body.given_names, body.birth_date)


def _asked(request: web.Request, body: AccessRequest) -> str | None:
    """The pseudonym asked for, None when only an account is."""
    named = {"family_name": body.family_name, "given_names": body.given_names,
             "birth_date": body.birth_date}  # fmt: skip
    missing = [f for f, v in named.items() if v is None]
    if len(missing) == 3:
        if body.account is None:
            raise _field("account", "give the identity fields, an account, or both")
        return None
    if missing:
        raise _field(missing[0], "required with the other identity fields")
    secret: bytes = request.app[_KEYS][0]
    family, given, birth = body.family_name or "", body.given_names or "", body.birth_date
    assert birth is not None
    return pseudonym_of(secret, family, given, birth)


def _ticket(tid: str, t: dict[str, Any]) -> HeldTicket:
    return HeldTicket(id=tid, session=t["session"], category=t["category"], state=t["state"],
                  charter=t.get("charter"), at=_at(int(t.get("at", 0))),
                  scanned=t.get("scan"))  # fmt: skip


def candidacy(box: identity.NameBox, person: str, f: service.Found) -> Candidacy:
    r = f.record
    name, guardian_name = service.opened(box, f, person)
    g = r.guardian
    return Candidacy(
        games=f.games, programme=f.programme, name=name, lottery=r.lottery,
        lottery_state=f.lottery_state, rank=f.rank, group=r.group, group_leader=f.group_leader,
        group_mobility_needs=f.mobility_needs, criteria=r.criteria, eligible=r.eligible,
        majority_on=r.majority_on,
        consent=Consent(version=r.consent.version, at=_at(r.consent.at), by=r.consent.by),
        guardian=None if g is None else Guardian(relationship=g.relationship,
                                                 name=guardian_name, by=g.by, at=_at(g.at)),
        reuse_consent=None if r.reuse is None else Reuse(version=r.reuse.version,
                                                         at=_at(r.reuse.at)),
        state=r.state, registered_by=r.by, registered_at=_at(r.at),
        ticket=None if f.ticket is None or r.ticket is None else _ticket(r.ticket, f.ticket),
        benefit=f.benefit, exceptions=f.exceptions, notices=f.notices,
    )  # fmt: skip


def fill(out: AccessExport, box: identity.NameBox, person: str,
         got: service.Access | None) -> None:  # fmt: skip
    """Put what :func:`service.access` found into the export."""
    if got is None:
        return
    out.candidacies = [candidacy(box, person, f) for f in got.candidacies]
    out.declarations = [Declared(games=d.games, at=_at(d.at), until=_at(d.until))
                        for d in got.declarations]  # fmt: skip


def empty(out: AccessExport) -> bool:
    return not out.candidacies and not out.declarations and out.account is None


@openapi.endpoint(
    "A person's access export (GDPR art. 15): by identity fields, everything the State "
    "programme stores about them in every programme of both games, the sealed names opened, and "
    "the conflict-of-interest declarations naming them; by account, the public sale's draw "
    "entries, restricted-strata memberships, windows, purchases and e-tickets, and the "
    "programme groups it leads, the acts it did as their leader and the ticket notices "
    "addressed to it. Recorded in "
    "the audit log (`privacy.access`, object `privacy:person`); 404 when nothing is stored",
    request=AccessRequest, response=AccessExport, auth="admin", scope=SCOPE,
    errors=(400, 403, 404, 415, 422), tags=TAGS,
)  # fmt: skip
async def access(request: web.Request) -> web.Response:
    admin = admin_of(request, SCOPE)
    body = await webio.read_json(request, AccessRequest)
    person = _asked(request, body)
    store = request.app[STORE]
    act = await request_act(request, admin.subject, "privacy.access", "privacy:person")
    out = AccessExport(pseudonym=person)
    if person is not None:
        box: identity.NameBox = request.app[_KEYS][1]
        fill(out, box, person, await service.access(store, person, act))
    if body.account is not None:
        out.account = await sale.account_export(store, body.account)
        if out.account is not None:
            await note.note(store, act)
    if empty(out):
        raise errors.not_found("nothing is stored about this person")
    return webio.respond(out)


@openapi.endpoint(
    "Erase a person's candidacy in a programme (GDPR art. 17): the whole record (consents, "
    "guardian, group membership, reuse consent, sealed names). 409 `erasure-restricted` once a "
    "ticket was issued to them or a committed lottery counts them (the probity controls keep it "
    "until the retention purge, art. 17(3)(b)/(e); `possible_from` says when); 404 when they "
    "are no candidate of it",
    request=Erasure, response=Erased, auth="admin", scope=SCOPE,
    errors=(400, 403, 404, 409, 415, 422), tags=TAGS,
)  # fmt: skip
async def erasure(request: web.Request) -> web.Response:
    admin = admin_of(request, SCOPE)
    body = await webio.read_json(request, Erasure)
    person = _person(request, body)
    store = request.app[STORE]
    games = await cache.games_of(store, body.programme)
    if games is None:
        raise errors.not_found(f"no programme {body.programme!r}")
    obj = f"programme:{body.programme}/candidate"
    act = await request_act(request, admin.subject, "privacy.erase", obj)
    try:
        await service.erase(store, games, body.programme, person, act)
    except service.Restricted as refused:
        raise refused.problem() from None
    return webio.respond(Erased(programme=body.programme, erased=True))


def setup(app: web.Application) -> None:
    """Read the programme's keys (outside the event loop: they may be files); add the routes."""
    cfg = app[SETTINGS].programme
    app[_KEYS] = (identity.pseudonym_secret(cfg), identity.name_box(cfg))
    app.router.add_post("/v1/admin/privacy/access", access)
    app.router.add_post("/v1/admin/privacy/erasure", erasure)
