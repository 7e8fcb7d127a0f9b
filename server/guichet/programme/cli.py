"""``guichet programme …``: each part adds its own subcommands (pool, people, …)."""

from __future__ import annotations

import argparse

from guichet.programme import people_cli, pool_cli, report, tickets_cli


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("programme", help='the State programme "Tous aux Jeux" (ops, operators)')
    inner = p.add_subparsers(dest="programme_cmd", required=True)
    pool_cli.register(inner)
    people_cli.register(inner)
    tickets_cli.register(inner)
    report.register(inner)
