"""``guichet privacy …``: the data protection officer's and ops' commands (docs/privacy.md).

- ``access --family … --given … --birth YYYY-MM-DD`` and/or ``--account …``: the person's
  access export (as the HTTP route), recorded in the audit log with the ops user as actor;
- ``purge --games G``: the retention purge of the games' programmes whose date is over."""

from __future__ import annotations

import argparse
import json
from datetime import date

from guichet import errors, opscli
from guichet.audit import web as audit_web
from guichet.audit.act import Act, cli_actor
from guichet.config import Settings
from guichet.privacy import note, purge, routes, sale, service
from guichet.programme import identity, model
from guichet.store.client import Store


def cmd_access(args: argparse.Namespace, settings: Settings) -> int:
    cfg = settings.programme
    secret, box = identity.pseudonym_secret(cfg), identity.name_box(cfg)
    digester = audit_web.digester(settings.audit)
    named = [args.family, args.given, args.birth]
    person = None
    if any(x is not None for x in named):
        if any(x is None for x in named):
            return opscli.fail("--family, --given and --birth go together")
        try:
            birth = date.fromisoformat(args.birth)
            person = routes.pseudonym_of(secret, args.family, args.given, birth)
        except ValueError:
            return opscli.fail("--birth: a date YYYY-MM-DD")
        except errors.Problem as problem:
            return opscli.fail(problem.detail)
    elif args.account is None:
        return opscli.fail("give --family, --given and --birth, or --account, or both")
    body = json.dumps({"family_name": args.family, "given_names": args.given,
                       "birth_date": args.birth, "account": args.account}).encode()  # fmt: skip
    act = digester.act(cli_actor(), "privacy.access", "privacy:person", body)

    async def work(store: Store) -> routes.AccessExport:
        out = routes.AccessExport(pseudonym=person)
        if person is not None:
            routes.fill(out, box, person, await service.access(store, person, act))
        if args.account is not None:
            out.account = await sale.account_export(store, args.account)
            if out.account is not None:
                await note.note(store, act)
        return out

    out = opscli.with_store(settings, routes.SCRIPTS, work)
    if routes.empty(out):
        return opscli.fail("nothing is stored about this person")
    opscli.show(out)
    return 0


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    digester = audit_web.digester(settings.audit)
    actor = cli_actor()

    def act(programme: str, phase: str, cursor: str) -> Act:
        what = f"privacy purge {args.games} {programme} {phase} {cursor}".encode()
        return digester.act(actor, "privacy.retention-purge", f"programme:{programme}", what)

    async def work(store: Store) -> purge.Report:
        return await purge.purge(store, args.games, act, args.batch)

    report = opscli.with_store(settings, purge.SCRIPTS, work)
    opscli.show({"games": report.games, "purged": report.purged, "kept": report.kept,
                 "batches": report.batches})  # fmt: skip
    if not report.purged and report.kept:
        return opscli.fail("no programme of these games is past its retention date")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("privacy", help="data protection: access export, retention purge")
    inner = p.add_subparsers(dest="privacy_cmd", required=True)
    a = inner.add_parser("access", help="a person's access export (GDPR art. 15), as JSON")
    a.add_argument("--family", help="family name (with --given and --birth)")
    a.add_argument("--given", help="given names")
    a.add_argument("--birth", help="birth date YYYY-MM-DD")
    a.add_argument("--account", help="an account id: the public sale's data about it")
    a.set_defaults(func=cmd_access)
    q = inner.add_parser("purge", help="the retention purge of a games' programmes past their "
                         "retention date (resumable; counters and audit log kept)")  # fmt: skip
    q.add_argument("--games", required=True, choices=model.GAMES, help="which games")
    q.add_argument("--batch", type=int, default=purge.BATCH,
                   help=f"records per atomic step (default {purge.BATCH})")  # fmt: skip
    q.set_defaults(func=cmd_purge)
