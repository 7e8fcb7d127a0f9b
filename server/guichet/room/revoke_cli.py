"""``guichet room revoke ROOM (--account A | --token-value T) --reason R``: end an admitted
session as the protected site would (``POST /v1/rooms/{room}/revoke``, scope ``rooms:revoke``)."""

from __future__ import annotations

import argparse

from guichet.config import Settings
from guichet.room import cli
from guichet.room.revocation import REASONS, SCOPE_REVOKE


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    body = {"reason": args.reason}
    if args.account is not None:
        body["account"] = args.account
    else:
        body["token"] = args.token_value
    # Without --token/--token-file: a development token with rooms:revoke only, as the site's.
    path = f"/v1/rooms/{args.room}/revoke"
    return cli._call(args, settings, "POST", path, body, scopes=(SCOPE_REVOKE,))


def register(inner: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    q = inner.add_parser("revoke", help="end an admitted session (as the protected site)")
    q.add_argument("room", help="room id")
    q.add_argument("--url", help="Guichet base URL (default: server.host:server.port)")
    q.add_argument("--token", help=f"admin token (scope {SCOPE_REVOKE})")
    q.add_argument("--token-file", help="file holding the admin token")
    q.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("--account", help="the account whose session ends")
    which.add_argument("--token-value", dest="token_value",
                       help="the admission token the site holds (an expired one too)")  # fmt: skip
    q.add_argument("--reason", required=True, choices=REASONS, help="why the session ends")
    q.set_defaults(func=cmd_revoke)
