"""``guichet programme …``: the people subcommands (the purge of names, for the ops host)."""

from __future__ import annotations

import argparse

from guichet import opscli
from guichet.config import Settings
from guichet.programme.acting import cli_act
from guichet.programme.people_refusals import PeopleRefused
from guichet.programme.people_service import PURGE_BATCH, SCRIPTS, People
from guichet.store.client import Store


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    act = cli_act(settings.audit, "programme.purge", f"programme:{args.programme}")

    async def work(store: Store) -> int:
        return await People(store).purge(args.programme, act, count=args.batch)

    try:
        purged = opscli.with_store(settings, SCRIPTS, work)
    except PeopleRefused as refused:
        return opscli.fail(refused.detail)
    opscli.show({"programme": args.programme, "purged": purged})
    return 0


def register(inner: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``purge``."""
    p = inner.add_parser(
        "purge",
        help="erase the printed names of a programme's candidates after its retention date "
        "(refused before; idempotent, resumable)",
    )
    p.add_argument("programme", help="programme id")
    p.add_argument("--batch", type=int, default=PURGE_BATCH,
                   help=f"candidate records per atomic step (default {PURGE_BATCH})")  # fmt: skip
    p.set_defaults(func=cmd_purge)
