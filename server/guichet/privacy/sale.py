"""What Guichet stores about one account (GDPR art. 15): in the public sale, its draw entries,
its memberships of the draws' restricted strata, purchase windows, purchases and their
e-tickets (with their first scan); in the State programme, the groups it leads and the acts it
did as their leader (the ``by`` fields set to ``account:<id>`` in candidates, tickets and
groups) and the ticket notices naming it. Plain reads across the draws', sales' and games'
slots; the caller records the access once with a note (note.py). Not read: the waiting rooms'
short-lived sessions, holds never confirmed (they expire) and the sale's outbox of window
notices (docs/privacy.md says why)."""

from __future__ import annotations

from typing import Any

import msgspec

from guichet import wire
from guichet.eticket.model import seats
from guichet.programme import model
from guichet.programme.people import decode_group
from guichet.programme.roles import leader_actor
from guichet.shop.service import HoldRecord
from guichet.store.client import Store
from guichet.store.keys import DRAWS_INDEX, SALES_INDEX, DrawKeys, ProgrammeKeys, SaleKeys
from guichet.units import US_PER_S

PHASES = ("packs", "singles")


class Entry(wire.Reply, kw_only=True):
    draw: str
    stratum: str
    registered_at: str


class Membership(wire.Reply, kw_only=True):
    """The account is on the member list ops loaded for a restricted stratum of a draw."""

    draw: str
    stratum: str


class Window(wire.Reply, kw_only=True):
    sale: str
    phase: str
    draw: str
    wave: str
    starts_at: str
    ends_at: str


class SaleTicket(wire.Reply, kw_only=True):
    id: str
    session: str
    category: str
    scanned: str | None = None


class Purchase(wire.Reply, kw_only=True):
    sale: str
    hold: str
    state: str
    confirmed_at: str | None = None
    tickets: list[SaleTicket]


class LedGroup(wire.Reply, kw_only=True):
    """A State programme group the account leads (``groups:<P>``, ``leaders:<P>``)."""

    games: str
    programme: str
    group: str
    mobility_needs: int
    #: Who last wrote the group (the inviting operator, or ``account:<id>``) and when.
    by: str
    at: str


class LeaderAct(wire.Reply, kw_only=True):
    """A record of the programme holding ``account:<id>`` as its actor: what the account did
    as a group's leader (registered a candidate, recorded a guardian's consent, committed or
    withdrew a ticket, set the group's mobility count)."""

    games: str
    programme: str
    #: ``candidate`` (id: the pseudonym), ``ticket`` (id: the ticket) or ``group``.
    record: str
    id: str
    #: The field holding the actor: ``by``, ``consent.by`` or ``guardian.by``.
    field: str
    #: The record's time (the candidate's or ticket's last write, the guardian's consent).
    at: str | None = None


class LeaderNotice(wire.Reply, kw_only=True):
    """A ticket notice of the programme's outbox addressed to the account as a leader (its
    link, which holds the beneficiary's link code, is left out)."""

    games: str
    programme: str
    ticket: str
    id: str


class AccountExport(wire.Reply, kw_only=True):
    account: str
    entries: list[Entry] = []
    #: Memberships of the draws' restricted strata (ops' member lists).
    memberships: list[Membership] = []
    windows: list[Window] = []
    purchases: list[Purchase] = []
    #: The State programme's groups the account leads.
    groups: list[LedGroup] = []
    #: The programme's records naming the account as the actor (``account:<id>``).
    leader_acts: list[LeaderAct] = []
    #: The programme's ticket notices addressed to the account as a leader.
    notices: list[LeaderNotice] = []


def _at(value_us: int | str) -> str:
    return wire.rfc3339(int(value_us) / US_PER_S)


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


async def _members(store: Store, key: str) -> list[str]:
    raw: Any = await store.client.smembers(key)
    return sorted(_text(x) for x in raw)


def _strata(raw: list[Any]) -> list[str]:
    """The strata named by a draw's cfg fields ``strata`` and ``restricted`` (comma lists),
    in order, once each: every member list the draw can hold."""
    seen: dict[str, None] = {}
    for field in raw:
        for s in _text(field or b"").split(","):
            if s:
                seen[s] = None
    return list(seen)


def _dict(raw: Any) -> dict[str, Any]:
    value = msgspec.json.decode(raw)
    return value if isinstance(value, dict) else {}


#: A ``by`` field of a candidate record (``field`` path, the time beside it).
_CANDIDATE_ACTORS = (("by", ()), ("consent.by", ("consent",)), ("guardian.by", ("guardian",)))


def _acts_in_candidate(actor: str, raw: dict[str, Any]) -> list[tuple[str, int | None]]:
    found = []
    for field, path in _CANDIDATE_ACTORS:
        node: Any = raw
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get("by") == actor:
            at = node.get("at")
            found.append((field, at if isinstance(at, int) else None))
    return found


async def _leader(store: Store, account: str, out: AccountExport) -> None:
    """The programme's data about ``account`` as a group leader. A leader leads at most one
    group per programme and its acts are on that programme's records only, so only the
    programmes whose ``leaders:<P>`` names it are read (their candidates and tickets in full:
    no index by actor); the retention purge deletes that index last, after blanking the
    leader's ``by`` fields, so a programme it no longer names holds nothing of the leader."""
    c = store.client
    actor = leader_actor(account)
    needle = b"account:"
    for games in model.GAMES:
        k = ProgrammeKeys(games)
        led: list[str] = []
        for p in await _hkeys(store, k.programmes):
            group_raw: Any = await c.hget(k.leaders(p), account)
            if group_raw is None:
                continue
            led.append(p)
            group = _text(group_raw)
            g_raw: Any = await c.hget(k.groups(p), group)
            if g_raw is not None:
                g = decode_group(g_raw)
                out.groups.append(LedGroup(games=games, programme=p, group=group,
                                           mobility_needs=g.mobility_needs, by=g.by,
                                           at=_at(g.at)))  # fmt: skip
            async for gid, raw in c.hscan_iter(k.groups(p), count=1000):
                if needle in raw and _dict(raw).get("by") == actor:
                    rec = _dict(raw)
                    out.leader_acts.append(LeaderAct(games=games, programme=p, record="group",
                                                     id=_text(gid), field="by",
                                                     at=_at(rec["at"])))  # fmt: skip
            async for pid, raw in c.hscan_iter(k.candidates(p), count=1000):
                if needle in raw:
                    for field, at in _acts_in_candidate(actor, _dict(raw)):
                        out.leader_acts.append(LeaderAct(
                            games=games, programme=p, record="candidate", id=_text(pid),
                            field=field, at=None if at is None else _at(at)))  # fmt: skip
            async for tid, raw in c.hscan_iter(k.tickets(p), count=1000):
                if needle in raw:
                    t = _dict(raw)
                    if t.get("by") == actor:
                        at = t.get("at")
                        out.leader_acts.append(LeaderAct(
                            games=games, programme=p, record="ticket", id=_text(tid),
                            field="by", at=_at(at) if isinstance(at, int) else None,
                        ))  # fmt: skip
        if not led:
            continue
        entries: Any = await c.xrange(k.outbox)
        for nid, fields in entries:
            f = {_text(a): _text(b) for a, b in fields.items()}
            if f.get("leader") == account and f.get("programme") in led:
                out.notices.append(LeaderNotice(games=games, programme=f["programme"],
                                                ticket=f.get("ticket", ""),
                                                id=_text(nid)))  # fmt: skip


async def _hkeys(store: Store, key: str) -> list[str]:
    raw: Any = await store.client.hkeys(key)
    return sorted(_text(x) for x in raw)


async def account_export(store: Store, account: str) -> AccountExport | None:
    """Everything stored about ``account`` (the sale's and the programme's), or None."""
    out = AccountExport(account=account)
    c = store.client
    for draw in await _members(store, DRAWS_INDEX):
        dk = DrawKeys(draw)
        raw: Any = await c.hget(dk.entries_of(account), account)
        if raw is not None:
            stratum, _, at = _text(raw).rpartition(":")
            out.entries.append(Entry(draw=draw, stratum=stratum, registered_at=_at(at)))
        cfg: Any = await c.hmget(dk.cfg, ["strata", "restricted"])
        for stratum in _strata(cfg):
            if await c.sismember(dk.members(stratum), account):
                out.memberships.append(Membership(draw=draw, stratum=stratum))
    for sale in await _members(store, SALES_INDEX):
        k = SaleKeys(sale)
        for phase in PHASES:
            raw = await c.hget(k.windows(phase), account)
            if raw is not None:
                starts, ends, draw, wave = _text(raw).split(":", 3)
                out.windows.append(Window(sale=sale, phase=phase, draw=draw, wave=wave,
                                          starts_at=_at(starts), ends_at=_at(ends)))  # fmt: skip
        for hold in await _members(store, k.bought(account)):
            raw = await c.hget(k.holds, hold)
            if raw is None:
                continue
            h = HoldRecord.decode(hold, raw)
            mine = seats(sale, hold, account, h.items)
            scans: Any = await c.hmget(k.scans, [s.id for s in mine]) if mine else []
            tickets = [SaleTicket(id=s.id, session=s.session, category=s.category,
                                  scanned=None if x is None else _text(x))
                       for s, x in zip(mine, scans, strict=True)]  # fmt: skip
            confirmed = None if h.confirmed_us is None else _at(h.confirmed_us)
            out.purchases.append(Purchase(sale=sale, hold=hold, state=h.state,
                                          confirmed_at=confirmed, tickets=tickets))  # fmt: skip
    await _leader(store, account, out)
    if not (out.entries or out.memberships or out.windows or out.purchases or out.groups
            or out.leader_acts or out.notices):  # fmt: skip
        return None
    return out
