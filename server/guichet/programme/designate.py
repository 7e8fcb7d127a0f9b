"""Designation (issue 14 items 5-6): from a lottery's ranking (``designate.lua``, one script per
batch) or, with a written justification, without a lottery (``designate_one.lua``, recorded in
the programme's exceptions register). Both give tickets only while the programme's allocation
of the item lasts, and never to a person whose benefit already names another programme of the
games (seed 002 §1: no double benefit)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from guichet import metrics, wire
from guichet.programme.acting import Acting, run
from guichet.programme.lottery import games_of, link_code
from guichet.programme.model import CategoryId, SessionId
from guichet.programme.tickets_refusals import Refuse
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys
from guichet.store.scripts import LuaScript

DESIGNATE = LuaScript("guichet.programme", "designate.lua")
DESIGNATE_ONE = LuaScript("guichet.programme", "designate_one.lua")
SCRIPTS = (DESIGNATE, DESIGNATE_ONE)
BATCH = 200  # tickets per script call
LOOK = 5000  # ranks looked at per script call at most

Pseudonym = Annotated[
    str, Meta(pattern=wire.whole(r"[0-9a-f]{64}"), description="a beneficiary's pseudonym")
]


class AssignRequest(wire.Base, kw_only=True):
    """How many tickets this call gives at most (default: every allocated one)."""

    max: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None


class Assigned(wire.Reply, kw_only=True):
    programme: str
    lottery: str
    assigned: int
    double_benefit_skipped: int
    allocation_left: int
    ranking_left: int


class DesignationRequest(wire.Base, kw_only=True):
    """A designation without lottery: whom, for what, and why (at least 20 characters)."""

    person: Pseudonym
    session: SessionId
    category: CategoryId
    #: Free text on one line (no control character: no stored text may carry one).
    justification: Annotated[
        str, Meta(min_length=20, max_length=2000, pattern=wire.whole(r"[^\x00-\x1f\x7f]+"))
    ]


class Designated(wire.Reply, kw_only=True):
    programme: str
    person: str
    ticket: str


async def assign(
    store: Store, programme: str, lottery: str, acting: Acting, most: int | None = None
) -> Assigned:
    """Walk the ranking from its cursor, giving tickets while the allocation lasts."""
    k = ProgrammeKeys(await games_of(store, programme))
    keys = [k.lottery(programme, lottery), k.ranking(programme, lottery), k.alloc(programme),
            k.assigned, k.candidates(programme), k.tickets(programme), k.benefit,
            k.stats(programme), k.outbox, k.groups(programme), k.sessions]  # fmt: skip
    given = doubles = 0
    left = ranks = 0
    batch = acting  # the first batch writes the act's record; the later ones none
    while most is None or given < most:
        n = BATCH if most is None else min(BATCH, most - given)
        codes: list[str] = []
        for _ in range(n):
            codes += link_code()
        last = "1" if most is not None and given + n >= most else ""
        raw = await run(store, DESIGNATE, k, keys,
                        [programme, lottery, acting.actor, LOOK, last, *codes], batch,
                        programme=programme)  # fmt: skip
        batch = acting.then()
        code = raw[0].decode()
        if code != "ok":
            detail = {"no_lottery": f"no lottery {lottery!r} in {programme!r}",
                      "not_run": f"lottery {lottery!r} has not run"}[code]  # fmt: skip
            raise Refuse(code, detail)
        step, d, left, ranks = (int(x) for x in raw[1:])
        given, doubles = given + step, doubles + d
        if left <= 0 or ranks <= 0:  # else: the batch was used up, or skipped ranks only
            break
    metrics.PROGRAMME_TICKETS.labels(programme, "assigned").inc(given)
    if doubles:
        metrics.PROGRAMME_DOUBLE_BENEFIT.labels(programme, "lottery").inc(doubles)
    return Assigned(programme=programme, lottery=lottery, assigned=given,
                    double_benefit_skipped=doubles, allocation_left=max(left, 0),
                    ranking_left=max(ranks, 0))  # fmt: skip


async def designate(
    store: Store, programme: str, body: DesignationRequest, acting: Acting, *, central: bool
) -> Designated:
    """One ticket without lottery, recorded in the exceptions register. A double benefit's
    refusal names the other programme only to the central role."""
    k = ProgrammeKeys(await games_of(store, programme))
    keys = [k.alloc(programme), k.assigned, k.candidates(programme), k.tickets(programme),
            k.benefit, k.stats(programme), k.outbox, k.groups(programme), k.sessions,
            k.exceptions(programme)]  # fmt: skip
    code, detail = await run(store, DESIGNATE_ONE, k, keys, [
        programme, body.person, body.session, body.category, body.justification, acting.actor,
        *link_code()], acting, programme=programme, pseudonyms=(body.person,))  # fmt: skip
    code, detail = code.decode(), detail.decode()
    if code == "ok":
        metrics.PROGRAMME_TICKETS.labels(programme, "assigned").inc()
        return Designated(programme=programme, person=body.person, ticket=detail)
    if code == "double_benefit":
        metrics.PROGRAMME_DOUBLE_BENEFIT.labels(programme, "designation").inc()
        if central:
            raise Refuse(code, f"this person already benefits from programme {detail!r}",
                         {"programme": detail})  # fmt: skip
        raise Refuse(code, "this person already benefits from another State programme")
    texts: dict[str, str] = {
        "no_session": f"no session {body.session!r}",
        "not_candidate": "no eligible candidate of this programme has this pseudonym",
        "already_designated": f"this candidate is already {detail}",
        "no_allocation": f"no ticket of {body.session}:{body.category} left in the allocation",
    }
    raise Refuse(code, texts[code])
