"""``guichet shop …``: sales, catalogues and the stock invariant, against Redis directly."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import msgspec

from guichet import clitime, opscli
from guichet.audit import acts
from guichet.clitime import rfc3339
from guichet.config import Settings
from guichet.shop import catalogue as files
from guichet.shop import demo, model
from guichet.shop.service import SCRIPTS, Shop, audit


def cmd_put(args: argparse.Namespace, settings: Settings) -> int:
    fields: dict[str, Any] = {"phase": args.phase, "games": args.games}
    if args.opens:
        fields["purchase_opens_at"] = args.opens
    if args.closes:
        fields["purchase_closes_at"] = args.closes
    if args.hold_ttl is not None:
        fields["hold_ttl_s"] = args.hold_ttl
    if args.no_window:
        fields["window_required"] = False
    try:
        spec = msgspec.convert(fields, model.SaleSpec, strict=False)
    except msgspec.ValidationError as exc:
        return opscli.fail(f"invalid sale: {exc}")
    act = acts.cli(settings, "sale.put", f"sale:{args.sale}", msgspec.json.encode(spec))
    created = opscli.with_store(settings, SCRIPTS, lambda s: Shop(s).put(args.sale, spec, act))
    print(f"sale {args.sale} {'created' if created else 'updated'} ({spec.games} games, "
          f"{spec.phase} phase, purchase period {spec.period_text()})")  # fmt: skip
    return 0


def cmd_load(args: argparse.Namespace, settings: Settings) -> int:
    """Parse the whole file first: a bad row stops everything, with its line."""
    try:
        if args.demo:
            parsed = None  # the demo sessions of the sale's games, once its spec is read
        elif args.file:
            parsed = files.parse(Path(args.file).read_bytes(), args.file)
        else:
            return opscli.fail("give a catalogue FILE (JSON or .csv) or --demo")
    except (OSError, files.CatalogueError) as exc:
        return opscli.fail(f"{args.file}: {exc}; nothing was loaded")

    async def work(store: Any) -> tuple[model.Catalogue, str, str] | str | None:
        shop = Shop(store)
        spec = await shop.spec(args.sale)
        if spec is None:
            return None
        catalogue = parsed or demo.shipped(spec.games)
        other = model.other_games(catalogue, spec.games)
        if other is not None:  # a sale sells the sessions of one games (the seed)
            return (f"session {other[1].id} is {other[1].games}; sale {args.sale} sells the "
                    f"{spec.games} games; nothing was loaded")  # fmt: skip
        what = msgspec.json.encode(catalogue)
        act = acts.cli(settings, "sale.catalogue", f"sale:{args.sale}", what)
        code, detail = await shop.load(args.sale, catalogue, act)
        return catalogue, code, detail

    result = opscli.with_store(settings, SCRIPTS, work)
    if result is None:
        return opscli.fail(f"no sale {args.sale!r}: `guichet shop put {args.sale}` first")
    if isinstance(result, str):
        return opscli.fail(result)
    parsed, code, detail = result
    if code != "ok":
        return opscli.fail(f"{detail}: fewer seats than are held and sold already; nothing loaded")
    seats = sum(c.seats for s in parsed.sessions for c in s.categories)
    print(f"{len(parsed.sessions)} sessions, {detail} items, {seats} seats loaded into {args.sale}")
    return 0


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    levels = opscli.with_store(settings, SCRIPTS, lambda s: Shop(s).levels(args.sale))
    if not levels.loaded:
        return opscli.fail(f"sale {args.sale!r} has no catalogue")
    problems = audit(levels)
    for p in problems:
        print(f"BREACH: {p}")
    totals = {name: sum(getattr(levels, name).values()) for name in ("loaded", "stock", "held",
                                                                     "sold")}  # fmt: skip
    print(f"{len(levels.loaded)} items: loaded {totals['loaded']} = available {totals['stock']} "
          f"+ held {totals['held']} + sold {totals['sold']}"
          + ("" if not problems else f"; {len(problems)} breaches"))  # fmt: skip
    return 1 if problems else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("shop", help="sales, catalogues, the stock invariant")
    inner = p.add_subparsers(dest="shop_command", required=True)
    c = inner.add_parser("put", help="create or replace a sale's phase and rules")
    c.add_argument("sale", help="sale id")
    c.add_argument("--phase", choices=["packs", "singles"], default="packs",
                   help="what the sale sells now (default packs)")  # fmt: skip
    c.add_argument("--games", choices=["olympic", "paralympic"], default="olympic",
                   help="the games whose sessions this sale sells")  # fmt: skip
    c.add_argument("--opens", type=rfc3339,
                   help=f"start of the purchase period ({clitime.HELP})")  # fmt: skip
    c.add_argument("--closes", type=rfc3339,
                   help=f"end of the purchase period ({clitime.HELP})")  # fmt: skip
    c.add_argument("--hold-ttl", dest="hold_ttl", type=int, help="seconds a hold lasts")
    c.add_argument("--no-window", dest="no_window", action="store_true",
                   help="sell without purchase windows (no draw)")  # fmt: skip
    c.set_defaults(func=cmd_put)
    c = inner.add_parser("load", help="load a catalogue (JSON or CSV), all or nothing")
    c.add_argument("sale", help="sale id")
    c.add_argument("file", nargs="?", help="catalogue file (JSON or CSV); omit with --demo")
    c.add_argument("--demo", action="store_true",
                   help="the shipped demo catalogue's sessions of the sale's games")  # fmt: skip
    c.set_defaults(func=cmd_load)
    c = inner.add_parser("audit", help="check available + held + sold = loaded; exit 1 if not")
    c.add_argument("sale", help="sale id")
    c.set_defaults(func=cmd_audit)
