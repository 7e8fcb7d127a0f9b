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
    if report.unanchored:
        text += "; after the last anchor (hash chain only): " + ", ".join(
            f"{c} {n}" for c, n in sorted(report.unanchored.items())
        )
    return text


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    jwks: Any = None
    try:
        if args.jwks:
            jwks = json.loads(Path(args.jwks).read_bytes())
        with open(args.file, "rb") as f:
            report = verify(f, jwks)
    except (OSError, ValueError) as exc:  # unreadable file, JWKS not JSON
        return opscli.fail(f"cannot read: {exc}")
    if report.ok:
        print(f"ok: {_summary(report)}")
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
    p.set_defaults(func=cmd_verify)
    p = cmds.add_parser("anchor", help="sign an anchor of every chain's head now")
    p.set_defaults(func=cmd_anchor)
