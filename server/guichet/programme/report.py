"""``guichet programme report``: the formal control report of one programme (issue 15 item 3).

Seed 002 §3.1: « Les opérations de contrôle interne devront se traduire par la production de
rapports formalisés et conservés pour justifier des diligences accomplies. »

It reads what the store holds about the programme (its spec, ``stats:<P>``, ``alloc:<P>``,
``tickets:<P>``, ``exceptions:<P>``, its lotteries and their transcripts, the games' journal,
reclaims, declarations and audit chain ``taj:<games>``), re-verifies each lottery as ``guichet
draw verify`` does and the audit chain record by record, and writes into ``--out``:
``report.html`` (``report_render.py``), the CSV annexes, each run lottery's
``lottery-<L>.transcript.json`` and ``manifest.json`` (every file's SHA-256). The report's
digest, the SHA-256 of ``manifest.json``, is recorded in the games' audit chain as the act
``programme.report``: running it again records a new report.

No personal data in the report: rows are identified by ticket id, never by pseudonym (a
pseudonym links one person across programmes); the exceptions register's pseudonym is left out.
A fact the store does not keep is said so (``report_render.NOT_STORED``), never made up.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import msgspec

from guichet import opscli, wire
from guichet.audit import anchors, chains
from guichet.audit import notes as audit_notes
from guichet.audit import verify as audit_verify
from guichet.audit.act import Act, cli_actor
from guichet.audit.record import GENESIS, Record, from_stream
from guichet.config import Settings
from guichet.draw import audit as draw_audit
from guichet.draw.model import Transcript
from guichet.programme import lottery
from guichet.programme import report_render as render
from guichet.programme.pool_service import SCRIPTS as POOL_SCRIPTS
from guichet.programme.pool_service import PoolService, audit
from guichet.programme.tickets import TicketRecord, lottery_of
from guichet.signing import Keyring
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys
from guichet.units import US_PER_S

SCRIPTS = (*POOL_SCRIPTS, *audit_notes.SCRIPTS)
ACTION = "programme.report"


def _t(us: object) -> str:
    try:
        return wire.rfc3339(int(str(us)) / US_PER_S)
    except (TypeError, ValueError, OverflowError, OSError):
        return str(us)


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _fields(raw: dict[Any, Any]) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in raw.items()}


def _ticket_order(ticket: str) -> tuple[str, int, str]:
    head, _, n = ticket.rpartition(".")
    return (head, int(n), ticket) if n.isdigit() else (ticket, 0, ticket)


def chain_tag(games: str) -> str:
    return f"taj:{games}"


# --- the audit chain ------------------------------------------------------------------------


async def verify_chain(
    store: Store, chain: str, records: list[Record], audit_jwks: dict[str, Any]
) -> render.ChainCheck:
    """Check the games' chain as ``guichet audit verify --partial --jwks`` does: its records
    (seq contiguous from 1, each ``prev`` the previous hash, each hash recomputed) and the
    signed anchors over it, against the service's published audit keys."""
    lines = [line async for line in chains.export_lines(store.client, None, only=chain)]
    report = audit_verify.verify(lines, audit_jwks, partial=True)  # one chain: the games'
    problems: list[str] = []
    if report.problem is not None:
        where = f"record seq {report.problem.seq}: " if report.problem.seq is not None else ""
        problems.append(where + report.problem.what)
    if report.records != len(records):  # appended between the two reads: said, not hidden
        problems.append(f"{report.records} records verified, {len(records)} reported")
    last = records[-1] if records else None
    return render.ChainCheck(chain=chain, records=len(records),
                             head_seq=last.seq if last else 0,
                             head_hash=last.hash if last else GENESIS, problems=problems,
                             anchors=report.anchors,
                             unanchored=report.unanchored.get(chain, 0))  # fmt: skip


async def chain_records(store: Store, games: str) -> list[Record]:
    tag = chain_tag(games)
    out: list[Record] = []
    start = "-"
    while True:
        batch: Any = await store.client.xrange(Act.key(tag), start, "+", count=5000)
        for entry_id, fields in batch:
            out.append(from_stream(tag, fields))
            start = "(" + _s(entry_id)
        if len(batch) < 5000:
            return out


def concerns(record: Record, programme: str) -> bool:
    obj = f"programme:{programme}"
    return record.object == obj or record.object.startswith(obj + "/")


# --- gathering --------------------------------------------------------------------------------


async def _journal(store: Store, k: ProgrammeKeys, programme: str) -> list[dict[str, str]]:
    raw: Any = await store.client.xrange(k.journal())
    return [f for _, fields in raw if (f := _fields(fields)).get("programme") == programme]


async def _lotteries(
    store: Store, k: ProgrammeKeys, programme: str, jwks: dict[str, Any]
) -> tuple[list[render.LotteryCheck], dict[str, bytes]]:
    prefix = k.lottery(programme, "x")[:-1]
    ids: set[str] = set()
    async for key in store.client.scan_iter(match=re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*",
                                            count=1000):  # fmt: skip
        rest = _s(key)[len(prefix) :]
        if rest and ":" not in rest:
            ids.add(rest)
    checks, files = [], {}
    for lot in sorted(ids):
        h = _fields(await store.client.hgetall(k.lottery(programme, lot)))
        h.pop("seed", None)
        state = h.get("state", "")
        problems: list[str] = []
        name, entries, ran_at = "", 0, ""
        if state == "run" and "transcript" in h:
            raw = h["transcript"].encode()
            t = msgspec.json.decode(raw, type=Transcript)
            ranked = [_s(p) for p in await store.client.lrange(k.ranking(programme, lot), 0, -1)]
            pairs = [(lottery.STRATUM, p) for p in sorted(ranked, key=str.encode)]
            problems = draw_audit.verify_pairs(t, pairs, jwks=jwks, ranked_ids=ranked,
                                               commitment=h.get("commitment"))  # fmt: skip
            name = f"lottery-{lot}.transcript.json"
            files[name] = raw
            entries, ran_at = t.entries, t.ran_at
        elif state == "run":
            problems = ["no transcript stored"]
        checks.append(render.LotteryCheck(
            id=lot, session=h.get("session", ""), category=h.get("category", ""), state=state,
            commitment=h.get("commitment", ""), entries=entries, ran_at=ran_at,
            transcript_file=name, problems=problems))  # fmt: skip
    return checks, files


def _declarations(raw: dict[Any, Any]) -> list[render.DeclarationRow]:
    """Read defensively: the declarations slice writes them (JSON {at, until, conflicts})."""
    out = []
    for subject, value in sorted((_s(a), _s(b)) for a, b in raw.items()):
        try:
            d = json.loads(value)
        except ValueError:
            d = None
        if not isinstance(d, dict):
            out.append(render.DeclarationRow(subject, "", "", f"unreadable: {value[:200]}"))
            continue
        at, until = d.get("at"), d.get("until")
        conflicts = json.dumps(d.get("conflicts", []), ensure_ascii=False, sort_keys=True)
        out.append(render.DeclarationRow(
            subject=subject, at=_t(at) if isinstance(at, int) else str(at or ""),
            until=_t(until) if isinstance(until, int) else str(until or ""),
            conflicts=conflicts))  # fmt: skip
    return out


def _withdrawals(
    tickets: dict[str, TicketRecord], reassigned_total: int
) -> list[render.WithdrawalRow]:
    """A withdrawal's reassigned ticket is given in the same script, at the same Redis time, of
    the same lottery and item: that is how it is found (its record keeps that time until its
    holder commits). An exception's seat always returns to the pool. When not every
    reassignment is found, a lottery withdrawal without one is "not stored"."""
    rows: list[tuple[str, TicketRecord, str]] = []
    for tid in sorted(tickets, key=_ticket_order):
        t = tickets[tid]
        if t.state != "withdrawn":
            continue
        lot = lottery_of(tid)
        pair = "" if lot == "x" else next((
            r for r in sorted(tickets, key=_ticket_order) if r != tid and lottery_of(r) == lot
            and tickets[r].at == t.at and (tickets[r].session, tickets[r].category)
            == (t.session, t.category)), "")  # fmt: skip
        rows.append((tid, t, pair))
    found = sum(1 for _, _, pair in rows if pair)
    out = []
    for tid, t, pair in rows:
        if pair:
            outcome = "reassigned"
        elif lottery_of(tid) == "x" or found >= reassigned_total:
            outcome = "returned"
        else:
            outcome = render.NOT_STORED
        out.append(render.WithdrawalRow(ticket=tid, session=t.session, category=t.category,
                                        at=_t(t.at), actor=t.by, outcome=outcome,
                                        reassigned_ticket=pair))  # fmt: skip
    return out


async def gather(
    store: Store, jwks: dict[str, Any], programme: str, by: str, audit_jwks: dict[str, Any]
) -> tuple[render.ReportData, dict[str, bytes]]:
    """Everything the report says, read from the store, and the lotteries' transcripts (file
    name -> bytes). Raises LookupError when there is no such programme."""
    service = PoolService(store)
    spec = await service.spec(programme)
    if spec is None:
        raise LookupError(f"no programme {programme!r}")
    games = spec.games
    k = ProgrammeKeys(games)
    seconds, micros = await store.client.time()
    now = int(seconds) * US_PER_S + int(micros)
    stats = await service.stats(programme, games)
    left = await service.allocation(programme, games)
    levels = await service.levels(games)
    raw_tickets: dict[Any, Any] = await store.client.hgetall(k.tickets(programme))
    tickets = {_s(a): msgspec.json.decode(b, type=TicketRecord) for a, b in raw_tickets.items()}
    register: Any = await store.client.xrange(k.exceptions(programme))
    exceptions = [_fields(f) for _, f in register]
    journal = await _journal(store, k, programme)
    lotteries, files = await _lotteries(store, k, programme, jwks)
    declarations = _declarations(await store.client.hgetall(k.declarations))
    records = await chain_records(store, games)
    chain = await verify_chain(store, chain_tag(games), records, audit_jwks)

    by_ticket = {e.get("ticket", ""): e for e in exceptions}
    designations = []
    for tid in sorted(tickets, key=_ticket_order):
        t, lot = tickets[tid], lottery_of(tid)
        if lot == "x":
            e = by_ticket.get(tid, {})
            designations.append(render.DesignationRow(
                ticket=tid, kind="exception", lottery="", session=t.session,
                category=t.category, at=_t(e["at"]) if "at" in e else render.NOT_STORED,
                actor=e.get("by", render.NOT_STORED),
                justification=e.get("justification", render.NOT_STORED)))  # fmt: skip
        else:
            first = t.state == "assigned"  # its record keeps the designation's act until then
            designations.append(render.DesignationRow(
                ticket=tid, kind="lottery", lottery=lot, session=t.session,
                category=t.category, at=_t(t.at) if first else render.NOT_STORED,
                actor=t.by if first else render.NOT_STORED, justification=""))  # fmt: skip
    allocation = [render.AllocationRow("*", int(j.get("tickets", 0)), _t(j.get("at", "")),
                                       j.get("by", "")) for j in journal
                  if j.get("act") == "allocate"]  # fmt: skip
    reclaims = [render.ReclaimRow(_t(j.get("at", "")), j.get("by", ""), int(j.get("tickets", 0)))
                for j in journal if j.get("act") == "reclaim"]  # fmt: skip
    states = [t.state for t in tickets.values()]
    summary = render.Summary(
        loaded=sum(levels.loaded.values()), allocated=stats.get("allocated", 0),
        unassigned=sum(left.values()),
        assigned=sum(1 for s in states if s in ("assigned", "committed")),
        used=states.count("used"), withdrawn=stats.get("withdrawn", 0),
        reassigned=stats.get("reassigned", 0), returned=stats.get("returned", 0),
        reclaimed=stats.get("reclaimed", 0), consents_missing=stats.get("consents_missing", 0),
        exceptions=len(exceptions),
    )  # fmt: skip
    own = [r for r in records if concerns(r, programme)]
    return render.ReportData(
        programme=render.ProgrammeInfo(
            id=programme,
            public=spec.public,
            games=games,
            operator=spec.operator,
            criteria=list(spec.criteria),
            reclaim_on=spec.reclaim_on.isoformat(),
            retention_until=spec.retention_until.isoformat(),
        ),
        generated_at=_t(now),
        generated_by=by,
        summary=summary,
        allocation=allocation,
        left=left,
        designations=designations,
        assignments=[
            render.AssignmentRow(
                ticket=tid,
                session=t.session,
                category=t.category,
                state=t.state,
                charter=t.charter or "",
                at=_t(t.at),
                actor=t.by,
            )
            for tid, t in sorted(tickets.items(), key=lambda x: _ticket_order(x[0]))
        ],
        withdrawals=_withdrawals(tickets, stats.get("reassigned", 0)),
        reclaims=reclaims,
        declarations=declarations,
        lotteries=lotteries,
        audit=[
            render.AuditRow(
                seq=r.seq,
                at=_t(r.at),
                actor=r.actor,
                action=r.action,
                object=r.object,
                outcome=r.outcome,
                hash=r.hash,
            )
            for r in own
        ],
        chain=chain,
        pool_breaches=audit(levels),
        notes=NOTES,
    ), files


NOTES = [
    "allocation.csv: the journal keeps each allocation act's total, not its split by item "
    "(item '*'); the split left unassigned now is given per item.",
    "designations.csv: a lottery ticket's designation time and actor are kept in its record "
    "only until a later act on the ticket (commitment, withdrawal, scan) replaces them.",
    "withdrawals.csv: who withdrew is the ticket's last actor; which ticket a withdrawal was "
    "reassigned to is found by time, lottery and item, and said 'not stored' when it cannot be.",
    "Rows are identified by ticket id: a beneficiary's pseudonym is personal data and is not "
    "in this report (the exceptions register's is left out).",
]


# --- writing ------------------------------------------------------------------------------


def write(out: Path, data: render.ReportData, extra: dict[str, bytes]) -> tuple[str, bytes]:
    """Write the report's files into ``out``: (the report's digest, manifest.json's bytes)."""
    out.mkdir(parents=True, exist_ok=True)
    annex_list = render.annexes(data)
    hashes: dict[str, str] = {}
    for a in annex_list:
        raw = a.text.encode()
        (out / a.name).write_bytes(raw)
        hashes[a.name] = hashlib.sha256(raw).hexdigest()
    others = {n: hashlib.sha256(b).hexdigest() for n, b in extra.items()}
    for n, b in extra.items():
        (out / n).write_bytes(b)
    page = render.html(data, annex_list, others).encode()
    (out / "report.html").write_bytes(page)
    hashes.update(others)
    hashes["report.html"] = hashlib.sha256(page).hexdigest()
    manifest = render.manifest(hashes)
    (out / "manifest.json").write_bytes(manifest)
    return hashlib.sha256(manifest).hexdigest(), manifest


def jwks_of(settings: Settings) -> dict[str, Any]:
    """The draw keyring's public keys (what the lotteries' transcripts are checked against)."""
    return {"keys": [dict(x) for x in Keyring(settings.draws.signing_key_dir).published()]}


def audit_jwks_of(settings: Settings) -> dict[str, Any]:
    """The audit keyring's public keys (what the anchors over the games' chain are checked
    against: ``GET /v1/audit/keys``)."""
    return {"keys": [dict(x) for x in anchors.keyring(settings.audit).published()]}


async def _record_digest(store: Store, games: str, act: Act) -> int:
    """Record the report's digest in the games' audit chain; its seq."""
    return await audit_notes.note(store.scripts, act, chain_tag(games), outcome="issued")


async def produce(
    store: Store,
    jwks: dict[str, Any],
    audit_jwks: dict[str, Any],
    programme: str,
    out: Path,
    by: str,
) -> tuple[str, int, render.ReportData]:
    """Gather, write and record one report: (digest, audit seq, data)."""
    data, files = await gather(store, jwks, programme, by, audit_jwks)
    digest, _ = await asyncio.to_thread(write, out, data, files)
    act = Act(actor=by, action=ACTION, object=f"programme:{programme}", digest=digest)
    seq = await _record_digest(store, data.programme.games, act)
    return digest, seq, data


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    by = cli_actor()  # no option names another actor (review item 5)
    out = Path(args.out)
    jwks, audit_jwks = jwks_of(settings), audit_jwks_of(settings)
    try:
        digest, seq, data = opscli.with_store(
            settings, SCRIPTS, lambda s: produce(s, jwks, audit_jwks, args.programme, out, by)
        )
    except LookupError as exc:
        return opscli.fail(f"{exc.args[0]}; no report was written")
    except OSError as exc:
        return opscli.fail(f"{out}: {exc}; the report was not recorded")
    print(f"report of {args.programme} written to {out}")
    print(f"digest {digest} (SHA-256 of manifest.json)")
    print(f"recorded in audit chain {chain_tag(data.programme.games)} as seq {seq}")
    return 0


def register(inner: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    c = inner.add_parser("report", help="the programme's formal control report (HTML + CSV)")
    c.add_argument("--programme", required=True, help="the programme id")
    c.add_argument("--out", required=True, help="directory to write the report into")
    c.add_argument("--format", choices=("html",), default="html", help="the document's format")
    c.set_defaults(func=cmd_report)
