"""A person's rights over what the State programme stores about them (docs/privacy.md):
access (GDPR art. 15) and erasure (art. 17) where the rules allow it.

The person is found by their identity fields — the same as registration takes — turned into
their keyed pseudonym (programme/identity.py); the plain names are never stored nor logged.
Each games is one slot (``{taj:<games>}``): one script per games reads (``person_access.lua``) or
erases (``erase.lua``) and writes the act's audit record in that games' chain, so an access
that finds data in both games leaves one record in each chain. Nothing found, or a refused
erasure, writes no record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import msgspec

from guichet import errors
from guichet.audit.act import Act
from guichet.programme import identity, model
from guichet.programme.people import (
    CandidateRecord,
    decode_candidate,
    decode_group,
    guardian_box_id,
)
from guichet.refusals import code_of
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys, tag_of
from guichet.store.scripts import LuaScript

ACCESS = LuaScript("guichet.privacy", "person_access.lua")
ERASE = LuaScript("guichet.privacy", "erase.lua")
SCRIPTS = (ACCESS, ERASE)

EraseCode = Literal["erased", "no_programme", "not_candidate", "ticket_issued",
                    "lottery_committed", "retry"]  # fmt: skip


@dataclass(frozen=True)
class NamedIn:
    """A conflict-of-interest declaration naming the person (its declarant not given: an
    agent's own data)."""

    games: str
    at: int
    until: int


@dataclass(frozen=True)
class Found:
    """One candidacy of the person, as stored (records decoded, names still sealed)."""

    games: str
    programme: str
    record: CandidateRecord
    lottery_state: str | None
    rank: int | None
    ticket: dict[str, Any] | None
    group_leader: str | None
    mobility_needs: int | None
    exceptions: list[dict[str, str]]
    notices: list[dict[str, str]]
    benefit: str | None


@dataclass(frozen=True)
class Access:
    candidacies: list[Found]
    declarations: list[NamedIn]


class Restricted(Exception):
    """Erasure refused: the record is needed for the probity controls until ``from_``."""

    def __init__(self, reason: str, detail: str, from_: date | None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.from_ = reason, detail, from_

    def problem(self) -> errors.Problem:
        ctx: dict[str, Any] = {"reason": self.reason}
        if self.from_ is not None:
            ctx["possible_from"] = model.paris_midnight(self.from_).isoformat()
        return errors.Problem(409, "erasure-restricted", "Erasure restricted", self.detail,
                              context=ctx)  # fmt: skip


def _pairs(fields: list[bytes]) -> dict[str, str]:
    return {fields[i].decode(): fields[i + 1].decode() for i in range(0, len(fields), 2)}


#: How many times a read is redone when a candidacy moved to another lottery between the
#: caller's look-up and the script (an erasure and a new registration in between: rare).
ATTEMPTS = 5


async def programme_ids(store: Store, k: ProgrammeKeys) -> list[str]:
    raw_names: list[bytes | str] = await store.client.hkeys(k.programmes)
    return sorted(p.decode() if isinstance(p, bytes) else p for p in raw_names)


async def lotteries_of(store: Store, k: ProgrammeKeys, person: str,
                       progs: list[str]) -> list[str]:  # fmt: skip
    """The lottery each programme's record of ``person`` names ('' none): the only lottery keys
    an access or erasure needs, read from the records (no keyspace scan). The scripts check
    each record still names the lottery they were given, else answer ``retry``."""
    if not progs:
        return []
    async with store.client.pipeline(transaction=False) as pipe:
        for p in progs:
            pipe.hget(k.candidates(p), person)
        raws: list[Any] = await pipe.execute()
    return [decode_candidate(raw).lottery if raw is not None else "" for raw in raws]


def _busy() -> errors.Problem:
    return errors.conflict("busy", "Busy", "the candidacy kept changing: try again", 1)


async def access(store: Store, person: str, act: Act) -> Access | None:
    """Every candidacy of ``person`` in every programme of both games, and the declarations
    naming them (one script and at most one audit record per games); None when nothing."""
    found: list[Found] = []
    declared: list[NamedIn] = []
    anything = False
    for games in model.GAMES:
        k = ProgrammeKeys(games)
        progs = await programme_ids(store, k)
        for _ in range(ATTEMPTS):
            lots = await lotteries_of(store, k, person, progs)
            keys = [k.programmes, k.benefit, k.outbox, k.declarations]
            args: list[Any] = [person, len(progs)]
            for p, lot in zip(progs, lots, strict=True):
                keys += [k.candidates(p), k.tickets(p), k.groups(p), k.exceptions(p)]
                if lot:
                    keys += [k.lottery(p, lot), k.ranking(p, lot)]
                args += [p, 1 if lot else 0, *([lot] if lot else [])]
            reply = await store.scripts(ACCESS, [*keys, Act.key(tag_of(k.programmes))],
                                        [*args, act.arg()])  # fmt: skip
            if reply[0] != b"retry":
                break
        else:
            raise _busy()
        if reply[0] == b"none":
            continue
        anything = True
        benefit = reply[1].decode() or None
        named = reply[2]
        declared += [NamedIn(games=games, at=int(named[i]), until=int(named[i + 1]))
                     for i in range(0, len(named), 2)]  # fmt: skip
        for c in reply[3:]:
            p, raw, state, rank, ticket, group = c[:6]
            rest = c[6:]
            cut = rest.index(b"--")
            g = decode_group(group) if group else None
            found.append(Found(
                games=games, programme=p.decode(), record=decode_candidate(raw),
                lottery_state=state.decode() or None, rank=None if rank < 0 else int(rank),
                ticket=msgspec.json.decode(ticket) if ticket else None,
                group_leader=None if g is None else g.leader,
                mobility_needs=None if g is None else g.mobility_needs,
                exceptions=[_pairs(e) for e in rest[:cut]],
                notices=[_pairs(n) for n in rest[cut + 1 :]], benefit=benefit,
            ))  # fmt: skip
    return Access(found, declared) if anything else None


def opened(box: identity.NameBox, f: Found, person: str) -> tuple[str | None, str | None]:
    """The printed name and the guardian's name, opened for the person (None once purged)."""
    name = None if f.record.name is None else box.open(f.games, person, f.record.name)
    g = f.record.guardian
    sealed = None if g is None else g.sealed_name
    guardian = None if sealed is None else box.open(f.games, guardian_box_id(person), sealed)
    return name, guardian


async def erase(store: Store, games: str, programme: str, person: str, act: Act) -> None:
    """Erase ``person``'s candidacy in ``programme``; 404 when there is none, 409
    ``erasure-restricted`` (:class:`Restricted`) when the probity controls need it."""
    k = ProgrammeKeys(games)
    for _ in range(ATTEMPTS):
        [lot] = await lotteries_of(store, k, person, [programme])
        lots = [lot] if lot else []
        keys = [k.programmes, k.candidates(programme), k.stats(programme), k.benefit,
                *(k.lottery(programme, x) for x in lots)]  # fmt: skip
        raw_code, detail, keep = await store.scripts(
            ERASE, [*keys, Act.key(tag_of(k.programmes))], [programme, person, *lots, act.arg()]
        )
        code: EraseCode = code_of(raw_code, EraseCode, "erase")
        if code != "retry":
            break
    else:
        raise _busy()
    until = date.fromisoformat(keep.decode()) + timedelta(days=1) if keep else None
    match code:
        case "erased":
            return
        case "retry":
            raise _busy()
        case "no_programme" | "not_candidate":
            raise errors.not_found("no such candidacy of this person in this programme")
        case "ticket_issued":
            raise Restricted("ticket-issued", f"a ticket was issued to them ({detail.decode()}):"
                             " the record is kept for the probity controls until the retention"
                             " purge", until)  # fmt: skip
        case "lottery_committed":
            raise Restricted("lottery-committed", f"the committed lottery {detail.decode()!r}"
                             " counts them: its draw must stay verifiable until the retention"
                             " purge", until)  # fmt: skip
