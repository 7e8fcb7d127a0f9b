"""What a programme script receives last so that it checks the agent's conflict-of-interest
declaration and writes the act's audit record (docs/architecture.md, "Acts of the State
programme" and "Conflict-of-interest declarations").

A script that performs a programme act includes, in this order::

    --!include guichet.audit:lua_include/audit.lua
    --!include lua_include/declared.lua

and its caller appends ``Acting.keys`` (the games' declarations, then the ``taj:<games>``
audit chain) to KEYS and ``Acting.args`` (the declaration ask, then the act) to ARGV:
:func:`run` does both and turns a declaration refusal into its 403 problem.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from guichet import errors
from guichet.audit import web as audit_web
from guichet.audit.act import Act, Digester, cli_actor
from guichet.audit.web import request_act
from guichet.config import AuditConfig
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys
from guichet.store.scripts import LuaScript


class _Ask(msgspec.Struct):
    actor: str
    programme: str
    pseudonyms: list[str]


_ENCODE_ASK = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Acting:
    """An act to record, and whether its agent must hold a current declaration (an admin
    token with programme:operate or programme:central; not the CLI nor a group leader)."""

    act: Act
    checked: bool
    later: bool = False

    def then(self) -> Acting:
        """The later batches of an act done in several script calls: its first batch checked
        the declaration and wrote the record (audit.lua); they pass no ask and an empty act."""
        return Acting(self.act, checked=False, later=True)

    def keys(self, k: ProgrammeKeys) -> list[str]:
        return [k.declarations, Act.key(f"taj:{k.games}")]

    def args(self, programme: str = "", pseudonyms: Sequence[str] = ()) -> list[bytes]:
        ask = b""
        if self.checked:
            ask = _ENCODE_ASK.encode(_Ask(self.act.actor, programme, list(pseudonyms)))
        return [ask, b"" if self.later else self.act.arg()]

    @property
    def actor(self) -> str:
        return self.act.actor


async def operator_act(request: web.Request, actor: str, action: str, object: str) -> Acting:
    """The act of an admin token (operator or central): its declaration is checked."""
    return Acting(await request_act(request, actor, action, object), checked=True)


async def leader_act(request: web.Request, actor: str, action: str, object: str) -> Acting:
    """The act of a group leader (an account: the beneficiaries' side, no declaration)."""
    return Acting(await request_act(request, actor, action, object), checked=False)


def body_act(request: web.Request, actor: str, action: str, object: str, body: bytes) -> Acting:
    """An operator's act whose body the handler read as a stream (:func:`request_act` reads
    it with ``request.read()``)."""
    return Acting(audit_web.streamed_act(request, actor, action, object, body), checked=True)


def cli_act(
    cfg: AuditConfig | Digester, action: str, object: str, actor: str | None = None
) -> Acting:
    """An act run by ops from the command line (no token, not an operator's act: no
    declaration check; docs). The digest is of the command line. Pass a :class:`Digester`
    made beforehand to build acts inside the event loop (the key file is read once)."""
    what = "\0".join(sys.argv).encode()
    digester = cfg if isinstance(cfg, Digester) else audit_web.digester(cfg)
    return Acting(digester.act(actor or cli_actor(), action, object, what), False)


REFUSED = (b"declaration_required", b"declared_conflict")
DECLARED_CHECK = LuaScript("guichet.programme", "declared_check.lua")
SCRIPTS = (DECLARED_CHECK,)


def refusal(answer: Any, acting: Acting, games: str, programme: str) -> None:
    """Raise the 403 a script answered for the agent's declaration (else nothing)."""
    if not (isinstance(answer, list) and answer and answer[0] in REFUSED):
        return
    why = answer[1].decode() if len(answer) > 1 else ""
    if answer[0] == b"declaration_required":
        state = "has expired" if why == "expired" else "is missing"
        raise errors.Problem(
            403, "declaration-required", "Conflict-of-interest declaration required",
            f"the conflict-of-interest declaration of {acting.actor!r} for the {games} games "
            f"{state}: file it (PUT /v1/admin/programme/declaration) before acting",
            context={"declaration": {"subject": acting.actor, "games": games}, "reason": why},
        )  # fmt: skip
    target = f"programme {programme!r}" if why == "programme" else "a person this act concerns"
    raise errors.Problem(
        403, "declared-conflict", "Declared conflict of interest",
        f"{acting.actor!r} declared a conflict of interest with {target}: another agent acts",
        context={"conflict": why, "programme": programme},
    )  # fmt: skip


async def run(
    store: Store, script: LuaScript, k: ProgrammeKeys, keys: Sequence[str], args: Sequence[Any],
    acting: Acting, *, programme: str = "", pseudonyms: Sequence[str] = (),
) -> Any:  # fmt: skip
    """Run ``script`` with the act appended; a declaration refusal raises its problem."""
    answer = await store.scripts(
        script, [*keys, *acting.keys(k)], [*args, *acting.args(programme, pseudonyms)]
    )
    refusal(answer, acting, k.games, programme)
    return answer


async def check(
    store: Store, k: ProgrammeKeys, acting: Acting, *, programme: str = "",
    pseudonyms: Sequence[str] = (),
) -> None:  # fmt: skip
    """The declaration check alone, writing nothing (``declared_check.lua``): an act done in
    several script calls checks every part first, so that it is refused before any part is
    done and recorded (each part's script checks again, atomically)."""
    if not acting.checked:
        return
    ask = acting.args(programme, pseudonyms)[0]
    refusal(await store.scripts(DECLARED_CHECK, [k.declarations], [ask]), acting, k.games,
            programme)  # fmt: skip


def internal(actor: str, action: str, object: str) -> Acting:
    """An act the service runs on its own behalf through the service layer (the demo's
    seeding, load tests): recorded, with no request to digest and no declaration check."""
    return Acting(Act(actor, action, object, ""), checked=False)
