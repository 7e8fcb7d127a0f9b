"""Programme tickets (issue 14 items 7-8): commitment, the nominative signed payload,
withdrawal with reassignment, and the gate's scan.

- **Who acts on a ticket**: its beneficiary, by the link code the designation's notice carried
  (stored only as its SHA-256), or the leader of the beneficiary's group (an account token), or
  — for a withdrawal — the programme's operator.
- **Commitment**: accepting the charter (its version recorded) and committing to attend moves
  the ticket to ``committed``; a minor without a guardian's consent is refused (409
  ``guardian-consent-required``) and no ticket is issued.
- **The ticket**: a compact JWS signed with the e-ticket keyring (the gates' keys), claims
  ``tid`` (ticket id), ``prg`` (programme), ``gms`` (games), ``ses``, ``cat``, ``nam`` (the
  printed name, opened from the name box: never stored plain) and ``iss``/``aud``/``iat``/
  ``exp``. No transfer exists: the name is in the payload.
- **Withdrawal** until the eve of the session (``model.withdrawal_deadline``; the script
  compares with Redis TIME), reassigned in the same script (``withdraw.lua``).
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, NoReturn

import msgspec
from msgspec import Meta

from guichet import metrics, wire
from guichet.audit import acts
from guichet.audit.act import Act
from guichet.config import EticketsConfig
from guichet.programme import access, identity
from guichet.programme.acting import Acting, check, internal, run
from guichet.programme.lottery import code_hash, games_of, link_code
from guichet.programme.tickets_refusals import Refuse
from guichet.signing import Signer
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys
from guichet.store.scripts import LuaScript
from guichet.units import US_PER_S

COMMIT = LuaScript("guichet.programme", "tickets_commit.lua")
WITHDRAW = LuaScript("guichet.programme", "tickets_withdraw.lua")
SCAN = LuaScript("guichet.programme", "tickets_scan.lua")
SCRIPTS = (COMMIT, WITHDRAW, SCAN)
SCAN_ACTION = "gate.scan"
DAY_S = 24 * 3600

TicketState = Literal["assigned", "committed", "withdrawn", "used"]
Code = Annotated[str, Meta(min_length=16, max_length=64, pattern=wire.whole(r"[A-Za-z0-9_-]+"))]
log = logging.getLogger("guichet.programme")


class TicketRecord(msgspec.Struct, kw_only=True):
    """``tickets:<P>`` values (the shared design's format; ``scan`` once used)."""

    person: str
    session: str
    category: str
    state: TicketState
    code_hash: str
    charter: str | None = None
    by: str = ""
    at: int = 0
    scan: str | None = None


class CommitRequest(wire.Base, kw_only=True):
    """The beneficiary (``code``) or their leader (account token, no ``code``) accepts the
    charter of this version and commits to attend (must be true)."""

    charter_version: Annotated[
        str, Meta(pattern=wire.whole(r"[\x21-\x7e]{1,32}"), description="the charter's version")
    ]
    attend: Annotated[bool, Meta(extra_json_schema={"const": True})]
    code: Code | None = None

    def __post_init__(self) -> None:
        if not self.attend:
            raise ValueError("`attend` must be true: the commitment to attend")


class WithdrawRequest(wire.Base, kw_only=True):
    """The beneficiary's link code (absent when the group's leader or the operator acts)."""

    code: Code | None = None


class ProgrammeTicket(wire.Reply, kw_only=True):
    """A programme ticket as its beneficiary or leader sees it; ``payload`` (what the QR code
    holds) and ``name`` only once committed."""

    id: str
    programme: str
    session: str
    category: str
    state: TicketState
    charter: str | None = None
    name: str | None = None
    payload: str | None = None


class Withdrawal(wire.Reply, kw_only=True):
    ticket: str
    outcome: Literal["reassigned", "returned"]
    reassigned_ticket: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who acts: ``code`` (the link code), ``leader`` (account id), else the operator."""

    actor: str
    code: str | None = None
    leader: str | None = None
    #: The act to record (withdraw; an operator's read of the ticket); None: not recorded.
    acting: Acting | None = None

    def args(self) -> list[str]:
        return [code_hash(self.code) if self.code else "", self.leader or ""]


def lottery_of(ticket: str) -> str:
    """The lottery a ticket id ``<P>.<L>.<n>`` came from (``x``: an exception)."""
    parts = ticket.split(".")
    return parts[1] if len(parts) == 3 else "x"


class Tickets:
    """Programme tickets on the store, signed with the e-ticket keyring."""

    def __init__(
        self, store: Store, signer: Signer, cfg: EticketsConfig, names: identity.NameBox
    ) -> None:
        self.store = store
        self.signer = signer
        self.cfg = cfg
        self.names = names

    async def record(self, games: str, programme: str, ticket: str) -> TicketRecord | None:
        raw: Any = await self.store.client.hget(ProgrammeKeys(games).tickets(programme), ticket)
        return None if raw is None else msgspec.json.decode(raw, type=TicketRecord)

    async def commit(
        self, programme: str, ticket: str, caller: Caller, charter: str
    ) -> ProgrammeTicket:
        games = await games_of(self.store, programme)
        k = ProgrammeKeys(games)
        code, raw, *sealed = await self.store.scripts(COMMIT, [
            k.tickets(programme), k.candidates(programme), k.leaders(programme), k.sessions],
            [ticket, *caller.args(), charter, caller.actor])  # fmt: skip
        code = code.decode()
        if code != "ok":
            await self._refuse(k, programme, code, ticket, caller)
        metrics.PROGRAMME_TICKETS.labels(programme, "committed").inc()
        t = msgspec.json.decode(raw, type=TicketRecord)
        return self._shown(games, programme, ticket, t, sealed[0].decode() or None)

    async def view(self, programme: str, ticket: str, caller: Caller) -> ProgrammeTicket:
        """The ticket for its beneficiary or leader; signed (with the name) once committed."""
        games = await games_of(self.store, programme)
        k = ProgrammeKeys(games)
        if caller.acting is not None:  # an operator's read: an act of access, recorded
            await self._answerable(k, games, programme, ticket, caller.acting)
            raw_t = await access.read(self.store, k, k.tickets(programme), ticket, caller.acting,
                                      programme=programme, person_field="person")  # fmt: skip
            t = None if raw_t is None else msgspec.json.decode(raw_t, type=TicketRecord)
        else:
            t = await self.record(games, programme, ticket)
        if t is None or not await self._holds(k, programme, t, caller):
            await self._refuse(k, programme, "unknown", ticket, caller)
        assert t is not None
        sealed = None
        if t.state in ("committed", "used"):
            raw: Any = await self.store.client.hget(k.candidates(programme), t.person)
            sealed = None if raw is None else msgspec.json.decode(raw).get("name")
        return self._shown(games, programme, ticket, t, sealed)

    async def _answerable(
        self, k: ProgrammeKeys, games: str, programme: str, ticket: str, acting: Acting
    ) -> None:
        """Before an operator's read is recorded: refuse (after the declaration check, which
        writes nothing) a ticket whose name cannot be shown, so that no read is recorded that
        was not answered."""
        t = await self.record(games, programme, ticket)
        if t is None or t.state not in ("committed", "used"):
            return
        await check(self.store, k, acting, programme=programme, pseudonyms=(t.person,))
        raw: Any = await self.store.client.hget(k.candidates(programme), t.person)
        sealed = None if raw is None else msgspec.json.decode(raw).get("name")
        self._shown(games, programme, ticket, t, sealed)

    def _shown(
        self, games: str, programme: str, ticket: str, t: TicketRecord, sealed: object
    ) -> ProgrammeTicket:
        """The ticket as its holder sees it; once committed, the name (opened from ``sealed``)
        and the signed payload."""
        out = ProgrammeTicket(id=ticket, programme=programme, session=t.session,
                              category=t.category, state=t.state, charter=t.charter)  # fmt: skip
        if t.state not in ("committed", "used"):
            return out
        if not isinstance(sealed, str):
            raise Refuse("no_name", "no name is recorded for this beneficiary")
        try:
            name = self.names.open(games, t.person, sealed)
        except identity.NameBoxError:  # another name key than the one it was sealed with
            log.error("a programme name does not open", extra={"programme": programme})
            raise Refuse("no_name", "the name on this ticket cannot be read") from None
        now_s = int(t.at / US_PER_S)
        valid_s = self.cfg.valid_days * DAY_S
        claims = {"iss": self.cfg.issuer, "aud": self.cfg.audience, "tid": ticket,
                  "prg": programme, "gms": games, "ses": t.session, "cat": t.category,
                  "nam": name, "iat": now_s, "exp": now_s + valid_s}  # fmt: skip
        return msgspec.structs.replace(out, name=name, payload=self.signer.sign(claims))

    async def _holds(self, k: ProgrammeKeys, programme: str, t: TicketRecord, c: Caller) -> bool:
        if c.code is not None:
            return hmac.compare_digest(code_hash(c.code), t.code_hash)
        if c.leader is not None:
            raw: Any = await self.store.client.hget(k.candidates(programme), t.person)
            group: Any = await self.store.client.hget(k.leaders(programme), c.leader)
            if raw is None or group is None:
                return False
            return bool(msgspec.json.decode(raw).get("group") == group.decode())
        return True  # the operator, authenticated by the route

    async def _refuse(
        self, k: ProgrammeKeys, programme: str, code: str, ticket: str, caller: Caller
    ) -> NoReturn:
        """Raise the refusal; a group leader acting on an existing ticket of someone outside
        its group is told so (403) rather than "no such ticket"."""
        if code == "unknown" and caller.leader is not None:
            leads: Any = await self.store.client.hexists(k.leaders(programme), caller.leader)
            held: Any = await self.store.client.hexists(k.tickets(programme), ticket)
            if leads and held:
                raise Refuse("not_your_group", f"ticket {ticket!r} is not of your group's")
        _refuse(code, ticket)

    async def withdraw(self, programme: str, ticket: str, caller: Caller) -> Withdrawal:
        """Void the ticket and reassign its seat (or return it to the pool), until the eve
        (recorded: ``caller.acting``, else as the service's own act)."""
        acting = caller.acting or internal(caller.actor, "programme.withdraw",
                                           f"programme:{programme}/ticket:{ticket}")  # fmt: skip
        games = await games_of(self.store, programme)
        k = ProgrammeKeys(games)
        lottery = lottery_of(ticket)
        if lottery != "x" and not wire.valid_slug(lottery):  # not a ticket id we issue
            await self._refuse(k, programme, "unknown", ticket, caller)
        lot = lottery if lottery != "x" else "x-none"
        keys = [k.tickets(programme), k.candidates(programme), k.leaders(programme),
                k.lottery(programme, lot), k.ranking(programme, lot), k.assigned, k.pool,
                k.benefit, k.stats(programme), k.outbox, k.groups(programme),
                k.sessions]  # fmt: skip
        code, detail, doubles = await run(self.store, WITHDRAW, k, keys, [
            programme, lottery, ticket, *caller.args(), caller.actor, *link_code()],
            acting, programme=programme)  # fmt: skip
        code = code.decode()
        if int(doubles):
            metrics.PROGRAMME_DOUBLE_BENEFIT.labels(programme, "lottery").inc(int(doubles))
        if code not in ("reassigned", "returned"):
            await self._refuse(k, programme, code, ticket, caller)
        metrics.PROGRAMME_TICKETS.labels(programme, "withdrawn").inc()
        metrics.PROGRAMME_TICKETS.labels(programme, code).inc()
        if code == "reassigned":
            metrics.PROGRAMME_TICKETS.labels(programme, "assigned").inc()
            return Withdrawal(ticket=ticket, outcome="reassigned",
                              reassigned_ticket=detail.decode())  # fmt: skip
        return Withdrawal(ticket=ticket, outcome="returned")


def _refuse(code: str, ticket: str) -> NoReturn:
    details = {
        "unknown": f"no ticket {ticket!r} of yours in this programme",
        "withdrawn": f"ticket {ticket!r} was withdrawn",
        "used": f"ticket {ticket!r} was used",
        "guardian_consent_required": "the beneficiary is a minor on the session's day: a legal "
        "guardian's consent must be recorded before any ticket is issued",
        "too_late": f"ticket {ticket!r}: withdrawal closed at 23:59 (Paris) on the eve of the "
        "session",
        "no_name": f"ticket {ticket!r}: the beneficiary's name was purged (retention over)",
    }
    raise Refuse(code, details[code])  # type: ignore[arg-type]


async def scan(
    store: Store, games: str, programme: str, ticket: str, gate: str, act: Act | None = None
) -> tuple[str, str]:
    """Mark a verified programme ticket used, once: (code, "<µs> <gate>"); the e-ticket gate's
    scan calls it for a payload with a ``prg`` claim. An accepted scan writes the record of
    ``act`` (a gate agent's act: no declaration) in the games' chain, its object set here:
    ``programme:<P>/ticket:<T>``."""
    k = ProgrammeKeys(games)
    act = replace(act or acts.internal(SCAN_ACTION, ""),
                  object=f"programme:{programme}/ticket:{ticket}")  # fmt: skip
    keys, args = acts.keys_args(act, [k.tickets(programme), k.assigned, k.used], [ticket, gate])
    code, used = await store.scripts(SCAN, keys, args)
    if code == b"ok":
        metrics.PROGRAMME_TICKETS.labels(programme, "used").inc()
    return code.decode(), used.decode()
