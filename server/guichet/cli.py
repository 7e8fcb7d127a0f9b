"""The ``guichet`` command line. Each component adds its own sub-command group here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import tomli_w

from guichet import __version__, demo
from guichet.audit import cli as audit_cli
from guichet.config import ConfigError, Settings, load_settings, masked
from guichet.draw import cli as draw_cli
from guichet.embedded import EmbeddedError
from guichet.eticket import cli as eticket_cli
from guichet.privacy import cli as privacy_cli
from guichet.programme import cli as programme_cli
from guichet.room import cli as room_cli
from guichet.shop import cli as shop_cli

Command = Callable[[argparse.Namespace, Settings], int]


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, object]]:
    server = {
        key: value
        for key in ("host", "port", "workers")
        if (value := getattr(args, key, None)) is not None
    }
    return {"server": server} if server else {}


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from guichet.server import serve  # heavy imports only when serving

    return serve(settings)


def cmd_config_show(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(tomli_w.dumps(masked(settings)))
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from guichet import auth

    sec = settings.security
    if args.ttl > sec.max_token_ttl_s:  # the server would refuse the token
        limit = sec.max_token_ttl_s
        print(f"guichet token: --ttl {args.ttl} is above security.max_token_ttl_s ({limit}); "
              "the server would refuse the token", file=sys.stderr)  # fmt: skip
        return 2
    if args.hs256:  # an account token signed with the secret shared with the front-end
        secret = auth.hs256_secret(sec)
        if secret is None or args.admin or not args.account:
            raise ConfigError("guichet token --hs256 needs --account ID and "
                              "security.account_hs256_secret (account tokens only)")  # fmt: skip
        print(auth.mint_hs256(secret, issuer=sec.issuer, audience=sec.audience,
                              subject=args.account, ttl_s=args.ttl, groups=args.group,
                              groups_claim=sec.groups_claim))  # fmt: skip
        return 0
    key = auth.load_or_create_dev_key(sec.dev_issuer_key_file)
    if args.admin:
        if not args.scope:
            raise ConfigError("guichet token --admin needs at least one --scope")
        token = auth.mint(
            key,
            issuer=sec.issuer,
            audience=sec.admin_audience,
            subject=args.subject or "admin:cli",
            ttl_s=args.ttl,
            scopes=args.scope,
            programmes=args.programme,
            programmes_claim=sec.programmes_claim,
        )
    else:
        if not args.account:
            raise ConfigError("guichet token needs --account ID (or --admin --scope S)")
        token = auth.mint(
            key, issuer=sec.issuer, audience=sec.audience, subject=args.account, ttl_s=args.ttl,
            groups=args.group, groups_claim=sec.groups_claim,
        )  # fmt: skip
    print(token)
    return 0


def cmd_version(args: argparse.Namespace, settings: Settings) -> int:
    print(__version__)
    return 0


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the HTTP service (embedded Valkey unless redis.url)")
    p.add_argument("--host", help="listen address (server.host)")
    p.add_argument("--port", type=int, help="listen port (server.port)")
    p.add_argument("--workers", type=int, help="worker processes sharing the port")
    p.set_defaults(func=cmd_serve)


def _add_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("config", help="inspect configuration")
    inner = p.add_subparsers(dest="config_command", required=True)
    show = inner.add_parser("show", help="print the effective config (TOML), secrets masked")
    show.set_defaults(func=cmd_config_show)


def _seconds(text: str) -> int:
    """A positive whole number of seconds (argparse type: a refusal exits 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of seconds, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 second, got {value}")
    return value


def _add_token(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("token", help="mint a token with the local development issuer key")
    p.add_argument("--account", help="account id (the token's subject)")
    p.add_argument("--admin", action="store_true", help="an admin token (admin audience)")
    p.add_argument("--scope", action="append", help="admin scope, repeatable (e.g. ops:read)")
    p.add_argument("--subject", help="admin subject (default admin:cli)")
    p.add_argument("--group", action="append", help="account group, repeatable (claim "
                   "security.groups_claim: admits to a draw's restricted stratum)")  # fmt: skip
    p.add_argument("--programme", action="append", help="State programme an admin token's "
                   "operator acts for, repeatable (claim security.programmes_claim)")  # fmt: skip
    p.add_argument("--ttl", type=_seconds, default=3600, help="lifetime in seconds, at most "
                   "security.max_token_ttl_s (default 3600)")  # fmt: skip
    p.add_argument("--hs256", action="store_true", help="an HS256 account token signed with "
                   "security.account_hs256_secret instead of the development key")  # fmt: skip
    p.set_defaults(func=cmd_token)


def _add_version(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("version", help="print the version")
    p.set_defaults(func=cmd_version)


#: Sub-command groups; components (room, draw, shop, …) append theirs.
REGISTRARS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_serve,
    _add_config,
    _add_token,
    _add_version,
    room_cli.register,
    draw_cli.register,
    shop_cli.register,
    eticket_cli.register,
    programme_cli.register,
    audit_cli.register,
    privacy_cli.register,
    demo.register,
]


DESCRIPTION = (
    "Guichet: waiting rooms, draws and ticket sales. Settings come from guichet.toml and "
    "GUICHET_<SECTION>_<KEY> environment variables (see `guichet config show`)."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="guichet", description=DESCRIPTION)
    parser.add_argument("--config", help="TOML config file (default: ./guichet.toml when present)")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in REGISTRARS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config, overrides=_overrides(args))
        code: int = args.func(args, settings)
    except ConfigError as exc:
        print(f"guichet: configuration error: {exc}", file=sys.stderr)
        return 2
    except EmbeddedError as exc:  # no Valkey binary, or it would not start: no traceback
        print(f"guichet: embedded Valkey: {exc}", file=sys.stderr)
        return 1
    return code
