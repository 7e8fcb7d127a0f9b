"""``guichet audit …``: export the log, verify an export (no Redis), sign an anchor now."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from guichet import opscli
from guichet.audit import anchors, chains, notes
from guichet.audit.verify import Report, verify
from guichet.config import Settings
from guichet.store.client import Store

RECORD_PREFIX = b'{"type":"record"'


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    jwks = {"keys": anchors.keyring(settings.audit).published()}

    async def work(store: Store) -> list[bytes]:
        return [line async for line in chains.export_lines(store.client, jwks, args.chain)]

    lines = opscli.with_store(settings, notes.SCRIPTS, work)
    if args.out:
        Path(args.out).write_bytes(b"".join(lines))
        records = sum(1 for x in lines if x.startswith(RECORD_PREFIX))
        print(f"{records} records written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(b"".join(lines))
    return 0


def _summary(report: Report) -> str:
    keys = {"jwks-file": "the --jwks file", "export": "the export's keys line",
            "none": "no keys (no anchor to check)"}[report.keys_from]  # fmt: skip
    scope = "every chain" if report.scope is None else "chains " + ", ".join(report.scope)
    text = (f"{report.chains} chains ({scope}), {report.records} records, {report.anchors} "
            f"anchors; signatures checked against {keys}")  # fmt: skip
    if report.anchor_given:
        text += "; the published anchor given is in it"
    if report.unanchored:
        text += "; after the last anchor (hash chain only): " + ", ".join(
            f"{c} {n}" for c, n in sorted(report.unanchored.items())
        )
    return text


UNVOUCHED = ("WARNING: nothing outside the export vouches for it: give both --jwks (the "
             "published keys, GET /v1/audit/keys) and --anchor (the latest published anchor, "
             "kept by an outsider); without the keys, whoever rewrites the log re-signs it with "
             "a key of their own; without the anchor, a log cut back to an older anchor "
             "passes")  # fmt: skip


def read_anchor(path: str) -> str:
    """A published anchor: the body of ``GET /v1/audit/anchor`` (``{"jws": ...}``) or the bare
    compact JWS. ValueError when it is neither."""
    raw = Path(path).read_bytes().strip()
    if raw.startswith(b"{"):
        body = json.loads(raw)
        jws = body.get("jws") if isinstance(body, dict) else None
    else:
        jws = raw.decode("ascii", errors="replace")
    if not isinstance(jws, str) or jws.count(".") != 2:
        raise ValueError(f"{path}: not an anchor (GET /v1/audit/anchor) nor a compact JWS")
    return jws


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    jwks: Any = None
    anchor: str | None = None
    try:
        if args.jwks:
            jwks = json.loads(Path(args.jwks).read_bytes())
        if args.anchor:
            anchor = read_anchor(args.anchor)
        with open(args.file, "rb") as f:
            report = verify(f, jwks, partial=args.partial, anchor=anchor)
    except (OSError, ValueError) as exc:  # unreadable file, JWKS or anchor not JSON
        return opscli.fail(f"cannot read: {exc}")
    if report.ok:
        print(f"ok: {_summary(report)}")
        if not report.vouched:
            print(UNVOUCHED + (" (--strict: exit 1)" if args.strict else ""))
            return 1 if args.strict else 0
        return 0
    p = report.problem
    assert p is not None
    where = ", ".join(f"{k} {v}" for k, v in msgspec.structs.asdict(p).items()
                      if k != "what" and v is not None)  # fmt: skip
    print(f"FAILED: {p.what}" + (f" ({where})" if where else ""), file=sys.stderr)
    print(f"read: {_summary(report)}", file=sys.stderr)
    return 1


def cmd_anchor(args: argparse.Namespace, settings: Settings) -> int:
    ring = anchors.keyring(settings.audit)

    async def work(store: Store) -> anchors.Result:
        return await anchors.sign_once(store, ring)

    try:
        result = opscli.with_store(settings, notes.SCRIPTS, work)
    except anchors.ChainBroken as exc:
        return opscli.fail(f"no anchor signed: {exc}")
    print({"appended": "anchor signed", "stale": "another signer appended first: run again",
           "unchanged": "no chain moved since the last anchor: none signed"}[result])  # fmt: skip
    return 0 if result != "stale" else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("audit", help="the audit log: export, verify, anchor")
    cmds = group.add_subparsers(dest="audit_command", required=True)
    p = cmds.add_parser("export", help="every chain, anchor and the public keys, as JSON lines")
    p.add_argument("--chain", help="only this chain (its tag, e.g. room:olympics)")
    p.add_argument("--out", help="write to FILE (default: stdout)")
    p.set_defaults(func=cmd_export)
    p = cmds.add_parser("verify", help="verify an export (no Redis); exit 1 on the first problem")
    p.add_argument("file", help="the export (JSON lines)")
    p.add_argument("--jwks", help="public keys to check anchors against (GET /v1/audit/keys); "
                   "default: the export's keys line")  # fmt: skip
    p.add_argument("--anchor", help="a copy of a published anchor (GET /v1/audit/anchor) "
                   "kept outside: fail unless this very anchor is in the export and checks "
                   "out")  # fmt: skip
    p.add_argument("--partial", action="store_true",
                   help="accept an export of some chains only (export --chain)")  # fmt: skip
    p.add_argument("--strict", action="store_true", help="exit 1 when nothing outside the "
                   "export vouches for it (no --anchor, no --jwks checking an anchor)")  # fmt: skip
    p.set_defaults(func=cmd_verify)
    p = cmds.add_parser("anchor", help="sign an anchor of every chain's head now")
    p.set_defaults(func=cmd_anchor)
