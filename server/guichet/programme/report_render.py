"""The control report's rendering (``guichet programme report``): pure, no I/O.

From a typed :class:`ReportData` (gathered by ``report.py``) to the CSV annexes (UTF-8, header
row, RFC 4180 through the csv module) and to one self-contained HTML document a controller can
read and print (no script, no external resource, inline CSS, ``@media print``). Every field is
escaped: a name of ``<script>`` stays text.

Seed 002 §3.1: « Les opérations de contrôle interne devront se traduire par la production de
rapports formalisés et conservés pour justifier des diligences accomplies. »
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

SEED_QUOTE = (
    "Les opérations de contrôle interne devront se traduire par la production de rapports "
    "formalisés et conservés pour justifier des diligences accomplies."
)
NOT_STORED = "not stored"


@dataclass(frozen=True)
class ProgrammeInfo:
    id: str
    public: str
    games: str
    operator: str
    criteria: list[str]
    reclaim_on: str
    retention_until: str


@dataclass(frozen=True)
class Summary:
    """The programme's counts: ``stats:<P>`` counters, the tickets' states, the games' pool."""

    loaded: int  # the games' pool as loaded (every programme of the games)
    allocated: int  # ever allocated to this programme
    unassigned: int  # allocated, not yet assigned (alloc:<P> now)
    assigned: int  # tickets now assigned or committed
    used: int
    withdrawn: int
    reassigned: int
    returned: int
    reclaimed: int
    consents_missing: int
    exceptions: int


@dataclass(frozen=True)
class AllocationRow:
    item: str  # "SESSION:CATEGORY", or "*" for an act whose split by item is not stored
    quantity: int
    at: str
    actor: str


@dataclass(frozen=True)
class DesignationRow:
    ticket: str  # the row id: the ticket id (never the beneficiary's pseudonym)
    kind: str  # lottery | exception
    lottery: str
    session: str
    category: str
    at: str
    actor: str
    justification: str


@dataclass(frozen=True)
class AssignmentRow:
    ticket: str
    session: str
    category: str
    state: str
    charter: str
    at: str  # the last act on the ticket
    actor: str


@dataclass(frozen=True)
class WithdrawalRow:
    ticket: str
    session: str
    category: str
    at: str
    actor: str
    outcome: str  # reassigned | returned | not stored
    reassigned_ticket: str


@dataclass(frozen=True)
class ReclaimRow:
    at: str
    actor: str
    tickets: int


@dataclass(frozen=True)
class DeclarationRow:
    subject: str
    at: str
    until: str
    conflicts: str  # JSON text as filed


@dataclass(frozen=True)
class LotteryCheck:
    id: str
    session: str
    category: str
    state: str
    commitment: str
    entries: int
    ran_at: str
    transcript_file: str  # "" when the lottery has not run
    problems: list[str]  # empty and run: it verifies

    @property
    def result(self) -> str:
        if self.state != "run":
            return f"not run ({self.state})"
        return "verified" if not self.problems else "FAILED: " + "; ".join(self.problems)


@dataclass(frozen=True)
class AuditRow:
    seq: int
    at: str
    actor: str
    action: str
    object: str
    outcome: str
    hash: str


@dataclass(frozen=True)
class ChainCheck:
    chain: str
    records: int
    head_seq: int
    head_hash: str
    problems: list[str]
    #: anchors checked over this chain against the published audit keys, and the records after
    #: the last one (resting on their hash links alone)
    anchors: int = 0
    unanchored: int = 0

    @property
    def result(self) -> str:
        return "verified" if not self.problems else "FAILED: " + "; ".join(self.problems)


@dataclass(frozen=True)
class ReportData:
    programme: ProgrammeInfo
    generated_at: str  # RFC 3339 UTC (Redis TIME)
    generated_by: str
    summary: Summary
    allocation: list[AllocationRow]
    left: dict[str, int]  # item -> allocated and not assigned, now
    designations: list[DesignationRow]
    assignments: list[AssignmentRow]
    withdrawals: list[WithdrawalRow]
    reclaims: list[ReclaimRow]
    declarations: list[DeclarationRow]
    lotteries: list[LotteryCheck]
    audit: list[AuditRow]
    chain: ChainCheck
    pool_breaches: list[str]  # the games' invariant (``guichet programme audit``)
    notes: list[str] = field(default_factory=list)  # facts the store does not hold

    @property
    def actions(self) -> dict[str, int]:
        """The programme's audit records counted by action."""
        out: dict[str, int] = {}
        for r in self.audit:
            out[r.action] = out.get(r.action, 0) + 1
        return dict(sorted(out.items()))

    @property
    def reassignments(self) -> list[WithdrawalRow]:
        return [w for w in self.withdrawals if w.outcome == "reassigned"]

    @property
    def returns(self) -> list[WithdrawalRow]:
        return [w for w in self.withdrawals if w.outcome == "returned"]


@dataclass(frozen=True)
class Annex:
    name: str
    rows: int
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def _csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


def annexes(d: ReportData) -> list[Annex]:
    """The CSV annexes, in the report's order."""
    wd = ("ticket", "session", "category", "at", "actor")
    tables: list[tuple[str, Sequence[str], list[Sequence[object]]]] = [
        ("allocation.csv", ("item", "quantity", "at", "actor"),
         [(r.item, r.quantity, r.at, r.actor) for r in d.allocation]),
        ("designations.csv", ("ticket", "kind", "lottery", "session", "category", "at", "actor",
                              "justification"),
         [(r.ticket, r.kind, r.lottery, r.session, r.category, r.at, r.actor, r.justification)
          for r in d.designations]),
        ("assignments.csv", ("ticket", "session", "category", "state", "charter", "at", "actor"),
         [(r.ticket, r.session, r.category, r.state, r.charter, r.at, r.actor)
          for r in d.assignments]),
        ("withdrawals.csv", (*wd, "outcome", "reassigned_ticket"),
         [(r.ticket, r.session, r.category, r.at, r.actor, r.outcome, r.reassigned_ticket)
          for r in d.withdrawals]),
        ("reassignments.csv", ("withdrawn_ticket", "session", "category", "at", "actor",
                               "reassigned_ticket"),
         [(r.ticket, r.session, r.category, r.at, r.actor, r.reassigned_ticket)
          for r in d.reassignments]),
        ("returns.csv", wd,
         [(r.ticket, r.session, r.category, r.at, r.actor) for r in d.returns]),
        ("reclaim.csv", ("at", "actor", "tickets"),
         [(r.at, r.actor, r.tickets) for r in d.reclaims]),
        ("declarations.csv", ("subject", "at", "until", "conflicts"),
         [(r.subject, r.at, r.until, r.conflicts) for r in d.declarations]),
        ("audit.csv", ("seq", "at", "actor", "action", "object", "outcome", "hash"),
         [(r.seq, r.at, r.actor, r.action, r.object, r.outcome, r.hash) for r in d.audit]),
    ]  # fmt: skip
    return [Annex(name, len(rows), _csv(header, rows)) for name, header, rows in tables]


def manifest(files: dict[str, str]) -> bytes:
    """``manifest.json``: every file of the report and its SHA-256 (sorted, canonical JSON);
    the report's digest is the SHA-256 of these bytes."""
    body = {"files": [{"name": n, "sha256": h} for n, h in sorted(files.items())]}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# --- HTML ------------------------------------------------------------------------------------

_CSS = """
body{font-family:Georgia,'Times New Roman',serif;margin:2rem auto;max-width:60rem;color:#111;
line-height:1.4;padding:0 1rem}
h1{font-size:1.6rem;border-bottom:2px solid #111;padding-bottom:.3rem}
h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #999}
table{border-collapse:collapse;margin:.5rem 0;width:100%}
th,td{border:1px solid #777;padding:.2rem .4rem;text-align:left;vertical-align:top;
font-size:.9rem}
th{background:#eee}
td.n{text-align:right;font-variant-numeric:tabular-nums}
code,.h{font-family:'DejaVu Sans Mono',monospace;font-size:.8rem;word-break:break-all}
.ok{color:#064}.bad{color:#a00;font-weight:bold}
blockquote{border-left:3px solid #999;margin:1rem 0;padding-left:1rem;font-style:italic}
@media print{body{margin:0;max-width:none;font-size:10pt}h2{break-after:avoid}
tr{break-inside:avoid}a{color:#000;text-decoration:none}}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="n">{_e(c)}</td>' if isinstance(c, int) else f"<td>{_e(c)}</td>"
            for c in row) + "</tr>"
        for row in rows
    )  # fmt: skip
    if not rows:
        body = f'<tr><td colspan="{len(header)}">none</td></tr>'
    attr = f' id="{_e(cls)}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verdict(text: str) -> str:
    cls = "ok" if text == "verified" else "bad" if text.startswith("FAILED") else ""
    return f'<span class="{cls}">{_e(text)}</span>'


def summary_rows(d: ReportData) -> list[tuple[str, int]]:
    s = d.summary
    return [
        ("loaded (the games' pool, every programme)", s.loaded),
        ("allocated to this programme", s.allocated),
        ("allocated, not yet assigned", s.unassigned),
        ("assigned (tickets assigned or committed now)", s.assigned),
        ("used", s.used),
        ("withdrawn", s.withdrawn),
        ("reassigned", s.reassigned),
        ("returned to the pool", s.returned),
        ("reclaimed", s.reclaimed),
        ("minors without a guardian's consent holding a ticket", s.consents_missing),
        ("exceptions (designations without lottery)", s.exceptions),
    ]


def html(d: ReportData, annex_list: Sequence[Annex], files: dict[str, str]) -> str:
    """The report as one HTML document; ``files``: the other files (transcripts) and their
    SHA-256, listed with the annexes."""
    p = d.programme
    title = f"Control report — programme {p.id}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<blockquote lang=\"fr\">« {_e(SEED_QUOTE)} » (AFA / DIJOP, Tous aux Jeux, §3.1)"
        "</blockquote>",
        _table(("", ""), [
            ("programme", p.id), ("public", p.public), ("games", p.games),
            ("operator", p.operator), ("eligibility criteria", ", ".join(p.criteria)),
            ("reclaim date", p.reclaim_on), ("data kept until", p.retention_until),
            ("generated at (UTC)", d.generated_at), ("generated by", d.generated_by),
        ], "programme"),
        "<h2>Summary</h2>",
        _table(("count", "tickets"), summary_rows(d), "summary"),
        "<p>Games' pool audit (pool + allocated + assigned + used = loaded): "
        + (_verdict("verified") if not d.pool_breaches
           else _verdict("FAILED: " + "; ".join(d.pool_breaches))) + "</p>",
        "<h2>Annexes</h2>",
        _table(("file", "rows", "SHA-256"),
               [(a.name, a.rows, a.sha256) for a in annex_list]
               + [(n, "", h) for n, h in sorted(files.items())], "annexes"),
        "<h2>Allocation</h2>",
        _table(("item", "quantity", "at", "actor"),
               [(r.item, r.quantity, r.at, r.actor) for r in d.allocation]),
        "<p>Allocated and not yet assigned, per item:</p>",
        _table(("item", "tickets"), sorted(d.left.items())),
        "<h2>Lotteries</h2>",
        _table(("lottery", "session", "category", "entries", "ran at", "commitment",
                "transcript", "verification"),
               [(x.id, x.session, x.category, x.entries, x.ran_at, x.commitment,
                 x.transcript_file, x.result) for x in d.lotteries], "lotteries"),
        "<h2>Exceptions (designations without lottery)</h2>",
        _table(("ticket", "session", "category", "at", "actor", "justification"),
               [(r.ticket, r.session, r.category, r.at, r.actor, r.justification)
                for r in d.designations if r.kind == "exception"], "exceptions"),
        "<h2>Withdrawals</h2>",
        _table(("ticket", "at", "actor", "outcome", "reassigned ticket"),
               [(r.ticket, r.at, r.actor, r.outcome, r.reassigned_ticket)
                for r in d.withdrawals]),
        "<h2>Reclaim</h2>",
        _table(("at", "actor", "tickets"), [(r.at, r.actor, r.tickets) for r in d.reclaims]),
        "<h2>Conflict-of-interest declarations (AFA)</h2>",
        _table(("subject", "filed at", "until", "conflicts"),
               [(r.subject, r.at, r.until, r.conflicts) for r in d.declarations],
               "declarations"),
        "<h2>Audit chain</h2>",
        f"<p>Chain <code>{_e(d.chain.chain)}</code>: {d.chain.records} records, head "
        f"<code>{_e(d.chain.head_seq)}</code> <span class=\"h\">{_e(d.chain.head_hash)}</span>"
        f": {_verdict(d.chain.result)}; {d.chain.anchors} signed anchors checked against the "
        f"published audit keys, {d.chain.unanchored} records after the last one.</p>",
        "<p>This programme's records by action:</p>",
        _table(("action", "records"), list(d.actions.items()), "actions"),
    ]  # fmt: skip
    if d.notes:
        parts.append("<h2>What the store does not hold</h2><ul>")
        parts += [f"<li>{_e(n)}</li>" for n in d.notes]
        parts.append("</ul>")
    parts.append(
        "<p>The report's digest (SHA-256 of manifest.json, which lists every file above and "
        "this document) is recorded in the audit chain as the act "
        "<code>programme.report</code>.</p></body></html>"
    )
    return "\n".join(parts) + "\n"
