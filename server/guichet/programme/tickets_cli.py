"""``guichet programme lottery …``: commit, run and export a programme's lottery (ops host: the
draw seal key and draw keyring). ``export`` writes what ``guichet draw verify`` checks:
``transcript.json``, ``entries.tsv``, ``ranking.tsv`` and ``jwks.json`` (the draw keyring's
public keys)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import msgspec

from guichet import opscli
from guichet.config import Settings
from guichet.draw import seal
from guichet.draw.model import Transcript
from guichet.programme import lottery
from guichet.programme.acting import cli_act
from guichet.programme.tickets_refusals import Refuse
from guichet.programme.tickets_routes import SCRIPTS
from guichet.signing import Keyring
from guichet.store.client import Store


def cmd_commit(args: argparse.Namespace, settings: Settings) -> int:
    key = seal.seal_key(settings.draws)
    act = cli_act(settings.audit, "programme.lottery-commit",
                  f"programme:{args.programme}/lottery:{args.lottery}")  # fmt: skip

    async def work(store: Store) -> lottery.Lottery:
        return await lottery.commit(store, key, args.programme, args.lottery, act)

    try:
        out = opscli.with_store(settings, SCRIPTS, work)
    except Refuse as exc:
        return opscli.fail(exc.detail)
    print(f"committed: {out.commitment}")
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    key = seal.seal_key(settings.draws)
    signer = Keyring(settings.draws.signing_key_dir)
    beacon = str(args.beacon_text).encode()
    act = cli_act(settings.audit, "programme.lottery-run",
                  f"programme:{args.programme}/lottery:{args.lottery}")  # fmt: skip

    async def work(store: Store) -> Transcript:
        return await lottery.run(store, key, signer, args.programme, args.lottery, beacon, act)

    try:
        t = opscli.with_store(settings, SCRIPTS, work)
    except Refuse as exc:
        return opscli.fail(exc.detail)
    print(f"ran: {t.entries} entries, ranking {t.ranking_digest}")
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    signer = Keyring(settings.draws.signing_key_dir)

    async def work(store: Store) -> tuple[Transcript, list[str]]:
        t = await lottery.transcript(store, args.programme, args.lottery)
        return t, await lottery.ranking(store, args.programme, args.lottery)

    try:
        t, ranked = opscli.with_store(settings, SCRIPTS, work)
    except Refuse as exc:
        return opscli.fail(exc.detail)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "transcript.json").write_bytes(msgspec.json.encode(t))
    (out / "entries.tsv").write_text(lottery.entries_tsv(ranked), encoding="utf-8")
    (out / "ranking.tsv").write_text(lottery.ranking_tsv(ranked), encoding="utf-8")
    jwks = {"keys": [dict(k) for k in signer.published()]}
    (out / "jwks.json").write_text(json.dumps(jwks), encoding="utf-8")
    print(f"{len(ranked)} entries exported to {out}", file=sys.stderr)
    return 0


def register(inner: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = inner.add_parser("lottery", help="commit, run, export a programme's lottery")
    sub = p.add_subparsers(dest="lottery_cmd", required=True)
    for name, func, text in (
        ("commit", cmd_commit, "seal a secret seed and publish its commitment (before the close)"),
        ("run", cmd_run, "rank the eligible candidates after the close, with a beacon"),
        ("export", cmd_export, "transcript, entries, ranking and JWKS for `guichet draw verify`"),
    ):
        c = sub.add_parser(name, help=text)
        c.add_argument("programme", help="programme id")
        c.add_argument("lottery", help="lottery id")
        if name == "run":
            c.add_argument("--beacon-text", required=True, help="the public beacon value")
        if name == "export":
            c.add_argument("--out", required=True, help="directory to write the files into")
        c.set_defaults(func=func)
