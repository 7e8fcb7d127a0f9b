"""``guichet room …``: ops drive rooms through the admin API (and rotate signing keys)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from guichet import clitime
from guichet.clitime import rfc3339
from guichet.config import ConfigError, Settings
from guichet.room import keys_audit
from guichet.room.model import MODES
from guichet.signing import Keyring

ADMIN_SCOPES = ("rooms:read", "rooms:write")


def _token(
    args: argparse.Namespace, settings: Settings, scopes: tuple[str, ...] = ADMIN_SCOPES
) -> str:
    """--token, --token-file, or a short-lived development token with ``scopes``."""
    if args.token:
        return str(args.token)
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            return f.read().strip()
    if not settings.security.dev_issuer:
        raise ConfigError("pass --token or --token-file (security.dev_issuer is off)")
    from guichet import auth

    sec = settings.security
    return auth.mint(
        auth.load_or_create_dev_key(sec.dev_issuer_key_file),
        issuer=sec.issuer,
        audience=sec.admin_audience,
        subject="admin:cli",
        ttl_s=300,
        scopes=list(scopes),
    )


def _call(
    args: argparse.Namespace,
    settings: Settings,
    method: str,
    path: str,
    body: Any = None,
    scopes: tuple[str, ...] = ADMIN_SCOPES,
) -> int:
    base = args.url or f"http://{settings.server.host}:{settings.server.port}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 (an operator-given http(s) URL)
        base.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {_token(args, settings, scopes)}",
                 **({"Content-Type": "application/json"} if data else {})},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:  # noqa: S310
            payload = json.loads(response.read() or b"null")
            code = 0
    except urllib.error.HTTPError as exc:
        payload = json.loads(exc.read() or b"null")
        code = 1
    except urllib.error.URLError as exc:
        print(f"guichet: cannot reach {base}: {exc.reason}", file=sys.stderr)
        return 1
    out = sys.stdout if code == 0 else sys.stderr
    out.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    return code


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    if getattr(args, "file", None):
        with open(args.file, encoding="utf-8") as f:
            spec: dict[str, Any] = json.load(f)
    else:
        spec = {}
    for flag, field in (
        ("opens_at", "opens_at"), ("closes_at", "closes_at"), ("rate", "rate_per_s"),
        ("max_active", "max_active"), ("audience", "audience"), ("target_url", "target_url"),
        ("idle_timeout", "idle_timeout_s"), ("mode", "mode"), ("sale", "sale"),
        ("draw", "draw"), ("token_ttl", "token_ttl_s"), ("challenge_bits", "challenge_bits"),
    ):  # fmt: skip
        value = getattr(args, flag, None)
        if value is not None:
            spec[field] = value
    if getattr(args, "paused", None) is not None:
        spec["paused"] = args.paused
    if getattr(args, "name", None) is not None:
        spec["name"] = args.name
    if getattr(args, "listed", None) is not None:
        spec["listed"] = args.listed
    return spec


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    return _call(args, settings, "GET", "/v1/admin/rooms")


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    return _call(args, settings, "GET", f"/v1/admin/rooms/{args.room}")


def cmd_put(args: argparse.Namespace, settings: Settings) -> int:
    return _call(args, settings, "PUT", f"/v1/admin/rooms/{args.room}", _spec(args))


def cmd_set(args: argparse.Namespace, settings: Settings) -> int:
    patch = {k: v for k, v in _spec(args).items() if k in (
        "rate_per_s", "max_active", "idle_timeout_s", "closes_at", "paused", "mode",
        "challenge_bits")}  # fmt: skip
    if not patch:
        raise ConfigError("guichet room set: give at least one of --rate, --max-active, "
                          "--idle-timeout, --closes-at, --paused/--running, --mode, "
                          "--challenge-bits")  # fmt: skip
    return _call(args, settings, "PATCH", f"/v1/admin/rooms/{args.room}", patch)


def cmd_pause(args: argparse.Namespace, settings: Settings) -> int:
    return _call(args, settings, "POST", f"/v1/admin/rooms/{args.room}/pause")


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    return _call(args, settings, "POST", f"/v1/admin/rooms/{args.room}/resume")


def cmd_rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    path = Keyring(settings.rooms.signing_key_dir).rotate()
    keys_audit.rotated(settings, "room.rotate-key", keys_audit.ADMISSION_KEYS, path)
    print(f"new admission-token key {path}; workers sign with it within seconds, and the old "
          "key stays in the JWKS until its tokens have expired")  # fmt: skip
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("room", help="waiting rooms: create, change, pause, inspect")
    inner = p.add_subparsers(dest="room_command", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--url", help="Guichet base URL (default: server.host:server.port)")
        q.add_argument("--token", help="admin token (scopes rooms:read / rooms:write)")
        q.add_argument("--token-file", help="file holding the admin token")
        q.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")

    def spec_flags(q: argparse.ArgumentParser, full: bool) -> None:
        if full:
            q.add_argument("--file", help="JSON room spec; flags override its fields")
            q.add_argument("--opens-at", dest="opens_at", type=rfc3339, help=clitime.HELP)
            q.add_argument("--audience", help="audience of admission tokens")
            q.add_argument("--target-url", dest="target_url", help="where admitted people go")
            q.add_argument(
                "--sale", help="linked sale: its stock meters admission, its holds need admission"
            )
            q.add_argument("--draw", help="linked draw: its entries need admission")
            q.add_argument("--token-ttl", dest="token_ttl", type=int, help="seconds")
            q.add_argument("--name", help="display name on the landing page (/)")
            listing = q.add_mutually_exclusive_group()
            listing.add_argument("--listed", dest="listed", action="store_true", default=None,
                                 help="shown on the landing page (default)")  # fmt: skip
            listing.add_argument("--unlisted", dest="listed", action="store_false",
                                 help="kept off the landing page (a members' presale)")  # fmt: skip
        q.add_argument("--closes-at", dest="closes_at", type=rfc3339, help=clitime.HELP)
        q.add_argument("--mode", choices=MODES,
                       help="queueing mode: fifo, shuffle-then-fifo (default: those who came "
                       "before the opening shuffled first), random (a draw among those "
                       "waiting), passthrough (everyone straight in), reject (no one in); "
                       "switched live by `set`")  # fmt: skip
        q.add_argument("--rate", type=float, help="people admitted per second")
        q.add_argument("--max-active", dest="max_active", type=int, help="most active shoppers")
        q.add_argument("--idle-timeout", dest="idle_timeout", type=int, help="seconds")
        q.add_argument("--challenge-bits", dest="challenge_bits", type=int, metavar="N",
                       help="proof-of-work difficulty at join, 0..30 (0 = off)")  # fmt: skip
        group = q.add_mutually_exclusive_group()
        group.add_argument("--paused", dest="paused", action="store_true", default=None,
                           help="admissions paused")  # fmt: skip
        group.add_argument("--running", dest="paused", action="store_false",
                           help="admissions running (not paused)")  # fmt: skip

    q = inner.add_parser("list", help="every room with live counters")
    common(q)
    q.set_defaults(func=cmd_list)
    for name, func, text in (
        ("show", cmd_show, "one room's spec and counters"),
        ("pause", cmd_pause, "pause admissions"),
        ("resume", cmd_resume, "resume admissions"),
    ):
        q = inner.add_parser(name, help=text)
        q.add_argument("room", help="room id")
        common(q)
        q.set_defaults(func=func)
    q = inner.add_parser("put", help="create or replace a room")
    q.add_argument("room", help="room id")
    common(q)
    spec_flags(q, full=True)
    q.set_defaults(func=cmd_put)
    q = inner.add_parser("set", help="change a live room (rate, max active, ...)")
    q.add_argument("room", help="room id")
    common(q)
    spec_flags(q, full=False)
    q.set_defaults(func=cmd_set)
    q = inner.add_parser("rotate-key", help="add a new admission-token signing key")
    q.set_defaults(func=cmd_rotate_key)
    from guichet.room import revoke_cli  # it imports this module

    revoke_cli.register(inner)
