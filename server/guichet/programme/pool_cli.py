"""``guichet programme …``: the pool subcommands (load the pool, put a programme, allocate,
audit the invariant, reclaim a games), against Redis directly. Each act records its actor as
``cli:<os user>`` (audit/act.cli_actor): no option names another actor (an act recorded under
a name of the caller's choosing would escape that agent's declaration, review item 5)."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import Any

import msgspec

from guichet import opscli, wire
from guichet.audit import web as audit_web
from guichet.audit.act import Digester
from guichet.config import Settings
from guichet.programme import model, pool
from guichet.programme.acting import Acting, cli_act
from guichet.programme.pool_service import SCRIPTS, PoolService, audit
from guichet.units import US_PER_S


def _act(
    args: argparse.Namespace, settings: Settings | Digester, action: str, object: str
) -> Acting:
    cfg = settings.audit if isinstance(settings, Settings) else settings
    return cli_act(cfg, action, object)


def cmd_pool_load(args: argparse.Namespace, settings: Settings) -> int:
    """Parse the whole file first: a bad row stops everything, with its line."""
    try:
        parsed = pool.parse(Path(args.file).read_bytes(), args.file)
    except (OSError, pool.PoolError) as exc:
        return opscli.fail(f"{args.file}: {exc}; nothing was loaded")
    act = _act(args, settings, "programme.pool-load", "pool")
    answers = opscli.with_store(settings, SCRIPTS, lambda s: PoolService(s).load(parsed, act))
    for a in answers:
        if a.code == "pool_loaded":
            return opscli.fail(f"the {a.games} pool is loaded already ({a.tickets} tickets); "
                               "a games' pool loads once; nothing was loaded")  # fmt: skip
    for a in answers:
        sessions = len(parsed.sessions.get(a.games, {}))
        items = len(parsed.counts[a.games])
        print(f"{a.games}: {sessions} sessions, {items} items, {a.tickets} tickets loaded")
    return 0


def cmd_put(args: argparse.Namespace, settings: Settings) -> int:
    fields: dict[str, Any] = {
        "public": args.public, "games": args.games, "operator": args.operator,
        "retention_until": args.retention_until,
        "criteria": [c.strip() for c in args.criteria.split(",") if c.strip()],
    }  # fmt: skip
    if args.reclaim_on:
        fields["reclaim_on"] = args.reclaim_on
    try:
        body = msgspec.convert(fields, pool.ProgrammeBody, strict=False)
    except msgspec.ValidationError as exc:
        return opscli.fail(f"invalid programme: {exc}")
    act = _act(args, settings, "programme.put", f"programme:{args.programme}")
    put = opscli.with_store(
        settings, SCRIPTS, lambda s: PoolService(s).put(args.programme, body, act)
    )
    if put.code is None:
        return opscli.fail(f"programme {args.programme} is of the {put.fixed} games; "
                           "it cannot change")  # fmt: skip
    if put.code == "public_fixed":
        return opscli.fail(f"programme {args.programme} serves the {put.fixed} public; "
                           "it cannot change")  # fmt: skip
    spec = put.spec
    assert spec is not None
    print(f"programme {args.programme} {put.code} ({spec.public}, {spec.games} games, operator "
          f"{spec.operator}, reclaim on {spec.reclaim_on}, data kept until "
          f"{spec.retention_until})")  # fmt: skip
    return 0


def _item(text: str) -> tuple[str, int]:
    session, _, rest = text.partition(":")
    category, _, quantity = rest.partition(":")
    try:
        item = msgspec.convert({"session": session, "category": category,
                                "quantity": int(quantity)}, pool.AllocationItem)  # fmt: skip
    except (ValueError, msgspec.ValidationError):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give SESSION:CATEGORY:QUANTITY, e.g. ATH-01:C:120"
        ) from None
    return model.item(item.session, item.category), item.quantity


def cmd_allocate(args: argparse.Namespace, settings: Settings) -> int:
    counts: dict[str, int] = {}
    for item, quantity in args.item:
        if item in counts:
            return opscli.fail(f"{item} given twice")
        counts[item] = quantity
    act = _act(args, settings, "programme.allocate", f"programme:{args.programme}")
    answer = opscli.with_store(
        settings, SCRIPTS,
        lambda s: PoolService(s).allocate(args.programme, counts, act),
    )  # fmt: skip
    if answer.code == "no_programme":
        return opscli.fail(f"no programme {args.programme!r}")
    if answer.code == "reclaimed":
        return opscli.fail(f"programme {args.programme} was reclaimed; it receives no more")
    if answer.code == "unknown_item":
        return opscli.fail(f"no {answer.item} in the pool; nothing was allocated")
    if answer.code == "pool_short":
        return opscli.fail(f"{answer.tickets} tickets left in the pool for {answer.item}; "
                           "nothing was allocated")  # fmt: skip
    print(f"{answer.tickets} tickets allocated to {args.programme}")
    return 0


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    games = [args.games] if args.games else list(model.GAMES)

    async def work(store: Any) -> list[Any]:
        service = PoolService(store)
        return [await service.levels(g) for g in games]

    breaches = 0
    for levels in opscli.with_store(settings, SCRIPTS, work):
        problems = audit(levels)
        breaches += len(problems)
        for p in problems:
            print(f"BREACH {levels.games}: {p}")
        allocated = sum(sum(a.values()) for a in levels.alloc.values())
        print(f"{levels.games}: {len(levels.loaded)} items: loaded {sum(levels.loaded.values())}"
              f" = pool {sum(levels.pool.values())} + allocated {allocated} + assigned "
              f"{sum(levels.assigned.values())} + used {sum(levels.used.values())}"
              + (f"; {len(problems)} breaches" if problems else ""))  # fmt: skip
    return 1 if breaches else 0


def cmd_reclaim(args: argparse.Namespace, settings: Settings) -> int:
    """Reclaim every programme of the games, one script each: a programme done before (a run
    killed midway) is skipped, so running it again finishes the job."""

    digester = audit_web.digester(settings.audit)

    async def work(store: Any) -> list[tuple[str, Any]]:
        service = PoolService(store)
        out = []
        for programme in await service.programmes(args.games):
            act = _act(args, digester, "programme.reclaim", f"programme:{programme}")
            out.append((programme, await service.reclaim(programme, act)))
        return out

    results = opscli.with_store(settings, SCRIPTS, work)
    early = 0
    for programme, r in results:
        at = rfc3339_text(r.reclaim_at_us)
        if r.code == "ok":
            print(f"{programme}: {r.tickets} tickets returned to the pool")
        elif r.code == "done":
            print(f"{programme}: reclaimed before; nothing to do")
        elif r.code == "too_early":
            early += 1
            print(f"{programme}: NOT reclaimed: its reclaim date is {at} (00:00 Paris)")
    if not results:
        print(f"no programme in the {args.games} games")
    if early:
        return opscli.fail(f"{early} programme(s) of the {args.games} games cannot be reclaimed "
                           "before their reclaim date; run again on that date")  # fmt: skip
    return 0


def rfc3339_text(us: int) -> str:
    return wire.rfc3339(us / US_PER_S)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def register(inner: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``pool load``, ``put``, ``allocate``, ``audit`` and ``reclaim``."""
    p = inner.add_parser("pool", help="the State's central pool")
    pool_inner = p.add_subparsers(dest="pool_cmd", required=True)
    c = pool_inner.add_parser("load", help="load the pool file (JSON or .csv), all or nothing")
    c.add_argument("file", help="pool file (JSON or .csv)")
    c.set_defaults(func=cmd_pool_load)
    c = inner.add_parser("put", help="create or update a programme (central)")
    c.add_argument("programme", help="programme id")
    c.add_argument("--public", required=True, choices=model.PUBLICS, help="who it serves")
    c.add_argument("--games", required=True, choices=model.GAMES, help="which games")
    c.add_argument("--operator", required=True, help="the operator running it (slug)")
    c.add_argument(
        "--reclaim-on",
        dest="reclaim_on",
        type=_day,
        help="reclaim date (default 2024-05-01 olympic, 2024-06-01 paralympic)",
    )
    c.add_argument("--retention-until", dest="retention_until", type=_day, required=True,
                   help="purge beneficiaries' data after this date")  # fmt: skip
    c.add_argument("--criteria", required=True, help="eligibility criteria, comma-separated")
    c.set_defaults(func=cmd_put)
    c = inner.add_parser("allocate", help="move tickets from the pool to a programme")
    c.add_argument("programme", help="programme id")
    c.add_argument("--item", type=_item, action="append", required=True,
                   help="SESSION:CATEGORY:QUANTITY, repeatable (all or nothing)")  # fmt: skip
    c.set_defaults(func=cmd_allocate)
    c = inner.add_parser(
        "audit", help="check pool + allocated + assigned + used = loaded; exit 1 if not"
    )
    c.add_argument("--games", choices=model.GAMES, help="one games only (default: both)")
    c.set_defaults(func=cmd_audit)
    c = inner.add_parser(
        "reclaim", help="return unassigned tickets to the pool on the reclaim date"
    )
    c.add_argument("--games", required=True, choices=model.GAMES, help="which games")
    c.set_defaults(func=cmd_reclaim)
