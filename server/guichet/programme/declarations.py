"""Conflict-of-interest declarations (AFA, seed 002 §3.1): every agent who acts on the
programme with an admin token (``programme:operate`` or ``programme:central``) files their own
declaration for a games — the programmes and persons they are in conflict with, or none —
before acting; it holds ``programme.declaration_valid_days`` and a new filing replaces it.
Each programme act checks it in its own script (``lua_include/declared.lua``, see
:mod:`guichet.programme.acting`); docs/architecture.md, "Conflict-of-interest declarations".
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta

from guichet import errors, openapi, webio, wire
from guichet.audit.act import Act
from guichet.audit.web import request_act
from guichet.auth import Admin, Refused, bearer
from guichet.programme import model, roles
from guichet.programme.people import Pseudonym
from guichet.state import SETTINGS, STORE, VERIFIER, admin_of
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys
from guichet.store.scripts import LuaScript
from guichet.units import US_PER_S

DECLARE = LuaScript("guichet.programme", "declare.lua")
SCRIPTS = (DECLARE,)
DAY_US = 24 * 3600 * US_PER_S
TAGS = ("programme",)


class Conflict(wire.Base, kw_only=True, omit_defaults=True):
    """One conflict of interest: with a programme (its id) or a person (their pseudonym)."""

    programme: wire.Slug | None = None
    pseudonym: Pseudonym | None = None

    def __post_init__(self) -> None:
        if (self.programme is None) == (self.pseudonym is None):
            raise ValueError("a conflict names a `programme` or a `pseudonym` (one of them)")


class DeclarationBody(wire.Base, kw_only=True):
    """The caller's own declaration for a games; an empty ``conflicts`` declares none."""

    games: model.Games
    conflicts: Annotated[list[Conflict], Meta(max_length=1000)]


class Declaration(wire.Reply, kw_only=True):
    subject: str
    games: model.Games
    at: str
    until: str
    conflicts: list[Conflict]


class Declarations(wire.Reply, kw_only=True):
    games: model.Games
    declarations: list[Declaration]


class _Stored(msgspec.Struct):
    at: int
    until: int
    conflicts: list[Conflict]


_STORED = msgspec.json.Decoder(_Stored)
_ENCODE = msgspec.json.Encoder()


def _rfc(us: int) -> str:
    return wire.rfc3339(us / US_PER_S)


def _view(subject: str, games: model.Games, s: _Stored) -> Declaration:
    return Declaration(subject=subject, games=games, at=_rfc(s.at), until=_rfc(s.until),
                       conflicts=s.conflicts)  # fmt: skip


def _declarant(request: web.Request) -> Admin:
    """An admin token with programme:operate or programme:central (else 401/403)."""
    auth = request.headers.get("Authorization")
    try:
        return request.app[VERIFIER].admin(bearer(auth), roles.CENTRAL)
    except Refused as exc:
        if exc.reason != "insufficient_scope":
            return admin_of(request, roles.CENTRAL)  # 401, counted
    return admin_of(request, roles.OPERATE)


async def read(store: Store, games: model.Games) -> list[Declaration]:
    raw: dict[Any, Any] = await store.client.hgetall(ProgrammeKeys(games).declarations)
    return [_view(s.decode(), games, _STORED.decode(v)) for s, v in sorted(raw.items())]


@openapi.endpoint(
    "File the caller's own conflict-of-interest declaration for a games (AFA): the programmes "
    "and persons (pseudonyms) they are in conflict with, `[]` for none. It replaces their "
    "previous one and holds `programme.declaration_valid_days`; every programme act by an "
    "operator or central token needs a current one (403 `declaration-required`) and is barred "
    "where it declares a conflict (403 `declared-conflict`)",
    request=DeclarationBody,
    response=Declaration,
    auth="admin",
    scope=f"{roles.OPERATE} or {roles.CENTRAL}",
    errors=(415, 422),
    tags=TAGS,
)
async def put_declaration(request: web.Request) -> web.Response:
    admin = _declarant(request)
    body = await webio.read_json(request, DeclarationBody)
    k = ProgrammeKeys(body.games)
    act = await request_act(request, roles.actor_of(admin), "programme.declare",
                            "declaration")  # fmt: skip
    valid_us = request.app[SETTINGS].programme.declaration_valid_days * DAY_US
    store = request.app[STORE]
    _code, at, until = await store.scripts(
        DECLARE, [k.declarations, Act.key(f"taj:{body.games}")],
        [admin.subject, _ENCODE.encode(body.conflicts), valid_us, act.arg()],
    )  # fmt: skip
    stored = _Stored(int(at), int(until), body.conflicts)
    return webio.respond(_view(admin.subject, body.games, stored))


@openapi.endpoint(
    "The conflict-of-interest declarations filed for a games (central role and auditors)",
    response=Declarations,
    auth="admin",
    scope=f"{roles.CENTRAL} or {roles.AUDIT}",
    errors=(422,),
    query=(("games", {"type": "string", "enum": list(model.GAMES)}),),
    required_query=("games",),
    tags=TAGS,
)
async def get_declarations(request: web.Request) -> web.Response:
    auth = request.headers.get("Authorization")
    try:
        request.app[VERIFIER].admin(bearer(auth), roles.AUDIT)
    except Refused as exc:
        if exc.reason != "insufficient_scope":
            admin_of(request, roles.AUDIT)  # 401, counted
        admin_of(request, roles.CENTRAL)
    value = request.query.get("games", "")
    games = next((g for g in model.GAMES if g == value), None)
    if games is None:
        raise errors.invalid_body(
            [errors.FieldError(field="games", detail=f"one of {', '.join(model.GAMES)}")],
            f"games: {value[:30]!r} is not one of {', '.join(model.GAMES)}",
        )
    found = await read(request.app[STORE], games)
    return webio.respond(Declarations(games=games, declarations=found))


def setup(app: web.Application) -> None:
    app.router.add_put("/v1/admin/programme/declaration", put_declaration)
    app.router.add_get("/v1/admin/programme/declarations", get_declarations)
