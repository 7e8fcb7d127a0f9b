"""``guichet draw …`` and ``guichet outbox …``: ops run draws against Redis directly.

These are batch commands for the ops host: they need the Redis settings (and, for ``commit``
and ``run``, the seal key), not an admin token. ``verify`` needs nothing but its files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, assert_never

import msgspec
import numpy as np

from guichet import clitime, opscli, wire
from guichet.audit import acts
from guichet.clitime import rfc3339
from guichet.config import ConfigError, Settings
from guichet.draw import audit, members, model, outbox, ranking, seal, waves
from guichet.draw.run import RunError, chunk_size, ranked_ids, read_bucket, run
from guichet.draw.service import SCRIPTS, Draws
from guichet.signing import Keyring
from guichet.store import sync
from guichet.store.client import Store
from guichet.store.keys import ENTRY_BUCKETS, DrawKeys
from guichet.units import US_PER_S

T = TypeVar("T")


_print = opscli.show
_fail = opscli.fail
_sync_client = opscli.sync_client


def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    return opscli.with_store(settings, SCRIPTS, work)


def _time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not an RFC 3339 time, e.g. 2026-07-01T08:00:00Z") from None
    if value.tzinfo is None:
        raise ConfigError(f"{text!r} needs a UTC offset (e.g. ...Z)")
    return value


# --- put / show / commit -----------------------------------------------------------------------


def cmd_put(args: argparse.Namespace, settings: Settings) -> int:
    spec: dict[str, Any] = {}
    if args.file:
        spec = json.loads(Path(args.file).read_text(encoding="utf-8"))
    flags = {"opens": "registration_opens_at", "closes": "registration_closes_at",
             "sale": "sale", "phase": "phase", "window_s": "window_s", "notice_s": "notice_s",
             "default_stratum": "default_stratum"}  # fmt: skip
    for flag, field in flags.items():
        if getattr(args, flag) is not None:
            spec[field] = getattr(args, flag)
    if args.strata:
        spec["strata"] = args.strata.split(",")
    if args.restricted is not None:
        spec["restricted"] = [s for s in args.restricted.split(",") if s]
    try:
        parsed = wire.decode(json.dumps(spec).encode(), model.DrawSpec)
    except Exception as exc:  # a Problem naming the field
        return _fail(f"invalid draw spec: {getattr(exc, 'detail', exc)}")
    act = acts.cli(settings, "draw.put", f"draw:{args.draw}", json.dumps(spec).encode())
    put = _with_store(settings, lambda s: Draws(s).put(args.draw, parsed, act))
    match put.code:
        case "committed":
            return _fail(f"draw {args.draw!r} is committed: its rules can no longer change")
        case "orphans":
            return _fail(
                f"stratum {put.stratum!r} holds {put.entries} entries: keep it in --strata"
            )
        case "created" | "replaced":
            print(f"draw {args.draw} {'created' if put.code == 'created' else 'updated'}")
        case _:
            assert_never(put.code)
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Store) -> dict[str, Any] | None:
        draws = Draws(store)
        state = await draws.state(args.draw)
        if state is None:
            return None
        progress: Any = await store.client.hget(DrawKeys(args.draw).cfg, "run_progress")
        return {
            "id": args.draw,
            "spec": msgspec.to_builtins(state.spec),
            "entries": await draws.counts(args.draw),
            "commitment": state.commitment,
            "committed_at": state.committed_us and wire.rfc3339(state.committed_us / US_PER_S),
            "ran_at": state.ran_us and wire.rfc3339(state.ran_us / US_PER_S),
            "ranked": state.ranked,
            "run_progress": progress and progress.decode(),
        }

    shown = _with_store(settings, work)
    if shown is None:
        return _fail(f"no draw {args.draw!r}")
    if shown["ranked"] is not None and shown["spec"].get("sale"):
        _, s = waves.state(_sync_client(settings), args.draw)
        shown["waves"] = {"released": s.waves, "cursor": s.cursor, "assigned": s.assigned,
                          "pending": s.pending is not None}  # fmt: skip
    _print(shown)
    return 0


def cmd_commit(args: argparse.Namespace, settings: Settings) -> int:
    key = seal.seal_key(settings.draws)
    act = acts.cli(settings, "draw.commit", f"draw:{args.draw}", args.draw.encode())
    c = _with_store(settings, lambda s: Draws(s).commit(args.draw, key, act))
    if c.code == "unknown":
        return _fail(f"no draw {args.draw!r}")
    if c.code == "closed":
        return _fail(
            f"registration closed at {wire.rfc3339(c.closes_us / US_PER_S)}: too late to commit, "
            "and a draw without a commitment cannot run"
        )
    if c.code == "exists":
        print(f"already committed at {wire.rfc3339(c.committed_us / US_PER_S)}", file=sys.stderr)
    print(c.commitment)
    return 0


# --- members of restricted strata ----------------------------------------------------------


def cmd_members_load(args: argparse.Namespace, settings: Settings) -> int:
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        accounts = members.parse(data)
    except (OSError, members.MemberListError) as exc:
        return _fail(f"cannot read the member list: {exc}")
    act = acts.cli(settings, "draw.members", f"draw:{args.draw}",
                   args.stratum.encode() + b"\n" + data)  # fmt: skip
    loaded = _with_store(
        settings, lambda s: Draws(s).load_members(args.draw, args.stratum, accounts, act)
    )
    match loaded.code:
        case "unknown":
            return _fail(f"no draw {args.draw!r}")
        case "committed":
            return _fail(f"draw {args.draw!r} is committed: its member lists are fixed")
        case "open":
            return _fail(
                f"stratum {args.stratum!r} of draw {args.draw!r} is open to anyone: list it "
                "in the draw's `restricted` strata first"
            )
        case "ok":
            print(f"stratum {args.stratum}: {loaded.members} members")
        case _:
            assert_never(loaded.code)
    return 0


def cmd_members_show(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: Store) -> dict[str, Any] | None:
        draws = Draws(store)
        spec = await draws.spec(args.draw)
        if spec is None:
            return None
        restricted = spec.restricted_strata()
        shown: dict[str, Any] = {
            "draw": args.draw,
            "restricted": restricted,
            "members": await draws.member_counts(args.draw, restricted),
        }
        if args.account is not None:
            shown["account"] = args.account
            shown["listed_in"] = [
                s for s in restricted if await draws.is_member(args.draw, s, args.account)
            ]
        return shown  # fmt: skip

    shown = _with_store(settings, work)
    if shown is None:
        return _fail(f"no draw {args.draw!r}")
    _print(shown)
    return 0


# --- run / transcript / export / verify -----------------------------------------------------


def _commitment(text: str) -> str:
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise argparse.ArgumentTypeError("a commitment is 64 hex digits (sha256 of the seed)")
    return text.lower()


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError("a count is a whole number from 1 to 10000")
    return int(text)


def _positive_s(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.001 <= value <= 86_400:
        raise argparse.ArgumentTypeError("must be between 0.001 and 86400 seconds")
    return value


def _beacon(args: argparse.Namespace) -> bytes:
    if args.beacon_text is not None:
        return str(args.beacon_text).encode()
    try:
        return bytes.fromhex(args.beacon or "")
    except ValueError:
        raise ConfigError("--beacon must be hex (or use --beacon-text)") from None


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def progress(phase: str, done: int, total: int) -> None:
        bar = bars.get(phase)
        if bar is None:
            for done_bar in bars.values():  # the previous phase is over
                done_bar.close()
            label = "scan buckets" if phase == "scan" else "store chunks"
            bar = bars[phase] = tqdm(total=total, desc=label, file=sys.stderr, disable=args.quiet)
        bar.update(done - bar.n)

    try:
        transcript, ran = run(
            settings.redis,
            sync.target(settings.redis),
            args.draw,
            beacon=_beacon(args),
            seal_key=seal.seal_key(settings.draws),
            signer=Keyring(settings.draws.signing_key_dir),
            processes=args.processes or settings.draws.run_processes,
            scan_batch=settings.draws.scan_batch,
            chunk=args.chunk,
            progress=progress,
            act=acts.cli(settings, "draw.run", f"draw:{args.draw}", _beacon(args)),
        )
    except (RunError, seal.SealError) as exc:
        return _fail(str(exc))
    finally:
        for bar in bars.values():
            bar.close()
    if not ran:
        print(f"draw {args.draw} had already run; its transcript:", file=sys.stderr)
    if args.out:
        Path(args.out).write_bytes(msgspec.json.encode(transcript))
    _print(transcript)
    return 0


def cmd_transcript(args: argparse.Namespace, settings: Settings) -> int:
    published = _with_store(settings, lambda s: Draws(s).transcript(args.draw))
    if published is None:
        return _fail(f"draw {args.draw!r} has not run")
    if args.out:
        Path(args.out).write_bytes(msgspec.json.encode(published))
    _print(published)
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    """Entries (stratum<TAB>id, sorted by id) and ranking (rank<TAB>id) for auditors."""
    client = _sync_client(settings)
    raw = client.hget(DrawKeys(args.draw).cfg, "spec")
    if raw is None:
        return _fail(f"no draw {args.draw!r}")
    strata = tuple(msgspec.json.decode(raw, type=model.DrawSpec).strata)
    if args.entries:
        ids: list[bytes] = []
        places = []
        for bucket in range(ENTRY_BUCKETS):
            bucket_ids, positions = read_bucket(client, args.draw, strata, bucket, 5000)
            ids += bucket_ids
            places.append(positions)
        entries = ranking.unkeyed(ids, np.concatenate(places))
        by_id = entries.take(np.argsort(entries.ids, kind="stable"))
        with open(args.entries, "w", encoding="utf-8") as f:
            for position, entry_id in zip(by_id.strata.tolist(), by_id.ids.tolist(), strict=True):
                f.write(f"{strata[position]}\t{entry_id.decode()}\n")
        print(f"{len(ids)} entries written to {args.entries}", file=sys.stderr)
    if args.ranking:
        ranked: Any = client.hget(DrawKeys(args.draw).cfg, "ranked")
        if ranked is None:
            return _fail(f"draw {args.draw!r} has not run: no ranking to export")
        rank, size = 0, chunk_size(client, args.draw)
        with open(args.ranking, "w", encoding="utf-8") as f:
            while rank < int(ranked):
                for entry_id in ranked_ids(client, args.draw, rank, 50_000, size):
                    rank += 1
                    f.write(f"{rank}\t{entry_id}\n")
        print(f"{rank} ranks written to {args.ranking}", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    try:
        transcript = audit.load_transcript(args.transcript)
        entries = audit.arrays(audit.read_entries(args.entries, transcript.strata),
                               transcript.strata)  # fmt: skip
        jwks = audit.load_jwks(args.jwks) if args.jwks else None
        ranked = None
        if args.ranking:
            with open(args.ranking, encoding="utf-8") as f:
                ranked = [line.rstrip("\n").partition("\t")[2] for line in f]
    except (OSError, ValueError, msgspec.DecodeError) as exc:
        return _fail(f"cannot read the draw files: {exc}")
    problems = audit.verify(
        transcript, entries, jwks=jwks, ranked_ids=ranked, commitment=args.commitment
    )
    for problem in problems:
        print(f"MISMATCH: {problem}", file=sys.stderr)
    if problems:
        return 1
    if jwks is None:
        print("note: signature not checked (pass --jwks)", file=sys.stderr)
    if args.commitment is None:
        print("note: commitment not checked against the one published before the close "
              "(pass --commitment)", file=sys.stderr)  # fmt: skip
    print(f"OK: draw {transcript.draw} verifies ({transcript.entries} entries)")
    return 0


# --- waves and outbox ------------------------------------------------------------------------


def cmd_release_wave(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    client = _sync_client(settings)
    try:
        count = args.count
        if args.from_stock is not None:
            _, s = waves.state(client, args.draw)
            left = args.from_stock if args.from_stock >= 0 else waves.stock_left(client, s.sale)
            count = waves.size_from_stock(s, left)
            windows, buyers, tickets = s.observed
            print(f"wave sized from stock: {count} windows for {left} tickets left "
                  f"({tickets} tickets by {buyers} buyers from {windows} windows of the waves "
                  "that have ended)", file=sys.stderr)  # fmt: skip
            if count == 0:
                return _fail("no stock left: no wave to release")
        starts_us = int(_time(args.start).timestamp() * US_PER_S)
        with tqdm(desc="windows", file=sys.stderr, disable=args.quiet) as bar:

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            wave = waves.release(
                client, args.draw, count=count or 0, starts_us=starts_us,
                allow_short_notice=args.allow_short_notice, stratum=args.stratum,
                progress=progress, act=acts.cli(settings, "draw.wave", f"draw:{args.draw}",
                                                f"{count} {starts_us} {args.stratum}".encode()),
            )  # fmt: skip
    except RunError as exc:
        return _fail(str(exc))
    if wave.resumed:
        print(f"finished wave {wave.number}, left pending by an earlier release", file=sys.stderr)
    _print({"wave": wave.number, "starts_at": wire.rfc3339(wave.starts_us / US_PER_S),
            "ends_at": wire.rfc3339(wave.ends_us / US_PER_S),
            "ranks": [wave.first_rank + 1, wave.target],
            "assigned": wave.assigned, "already_had_a_window": wave.skipped})  # fmt: skip
    return 0


def cmd_waves(args: argparse.Namespace, settings: Settings) -> int:
    """Per wave: its window, windows given, buyers, tickets, conversion."""
    try:
        _, s = waves.state(_sync_client(settings), args.draw)
    except RunError as exc:
        return _fail(str(exc))

    def ratio(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    rows = [{"wave": r.number, "starts_at": wire.rfc3339(r.starts_us / US_PER_S),
             "ends_at": wire.rfc3339(r.ends_us / US_PER_S),
             "state": "pending" if s.pending and s.pending[0] == r.number
             else "open" if r.ends_us > s.now_us else "ended",
             "windows": r.windows, "buyers": r.buyers, "tickets": r.tickets,
             "conversion": ratio(r.conversion), "tickets_per_window": ratio(r.tickets_per_window)}
            for r in s.records]  # fmt: skip
    _print({"draw": args.draw, "sale": s.sale, "ranked": s.ranked, "cursor": s.cursor,
            "waves": rows, "windows": s.assigned, "buyers": s.buyers,
            "tickets": s.tickets})  # fmt: skip
    return 0


def _target(value: str) -> str:
    """An outbox target: a sale id, or ``programme:<games>`` (the State programme's links)."""
    if value.startswith(outbox.PROGRAMME):
        if value[len(outbox.PROGRAMME) :] not in ("olympic", "paralympic"):
            raise argparse.ArgumentTypeError("programme:olympic or programme:paralympic")
        return value
    if not wire.valid_slug(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a sale id")
    return value


def cmd_outbox_show(args: argparse.Namespace, settings: Settings) -> int:
    b = _with_store(settings, lambda s: outbox.backlog(s.client, args.sale))
    oldest = b.oldest_due_us and wire.rfc3339(b.oldest_due_us / US_PER_S)
    _print({"sale": args.sale, "length": b.length, "undelivered": b.undelivered,
            "pending": b.pending, "oldest_due_at": oldest})  # fmt: skip
    return 0


def cmd_outbox_read(args: argparse.Namespace, settings: Settings) -> int:
    idle = args.claim_idle_s
    idle_ms = max(1, round(1000 * (settings.draws.outbox_claim_idle_s if idle is None else idle)))
    if args.sale.startswith(outbox.PROGRAMME):
        raw = _with_store(
            settings, lambda s: outbox.read_raw(s, args.sale, args.consumer, args.count, idle_ms)
        )
        for i, f in raw:
            sys.stdout.write(json.dumps(outbox.programme_notice(i, f)) + "\n")
        return 0
    notices = _with_store(
        settings, lambda s: outbox.read(s, args.sale, args.consumer, args.count, idle_ms)
    )
    for n in notices:
        sys.stdout.write(json.dumps(msgspec.to_builtins(n)) + "\n")
    return 0


def cmd_outbox_ack(args: argparse.Namespace, settings: Settings) -> int:
    act = acts.cli(settings, "outbox.ack", outbox.object_of(args.sale),
                   " ".join(args.ids).encode())  # fmt: skip
    done = _with_store(settings, lambda s: outbox.ack(s, args.sale, args.ids, act))
    print(f"{done} acknowledged")
    return 0


def cmd_outbox_trim(args: argparse.Namespace, settings: Settings) -> int:
    act = acts.cli(settings, "outbox.trim", outbox.object_of(args.sale), args.sale.encode())
    gone = _with_store(settings, lambda s: outbox.trim(s, args.sale, act))
    print(f"{gone} acknowledged notices deleted")
    return 0


TARGET_HELP = "a sale id, or programme:olympic / programme:paralympic"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("draw", help="configure, commit, run, verify draws; release windows")
    inner = p.add_subparsers(dest="draw_command", required=True)

    c = inner.add_parser("put", help="create or replace a draw (until it is committed)")
    c.add_argument("draw", help="draw id")
    c.add_argument("--file", help="JSON draw spec; flags override its fields")
    c.add_argument("--opens", type=rfc3339, help=f"registration opens ({clitime.HELP})")
    c.add_argument("--closes", type=rfc3339, help=f"registration closes ({clitime.HELP})")
    c.add_argument("--strata", help="strata in priority order, comma-separated")
    c.add_argument("--default-stratum", dest="default_stratum",
                   help="the open stratum of everyone else (default general)")  # fmt: skip
    c.add_argument("--restricted", help="strata that need membership, comma-separated ('': "
                   "none; default: every stratum but the default one)")  # fmt: skip
    c.add_argument("--sale", help="the sale the windows are for")
    c.add_argument("--phase", choices=["packs", "singles"],
                   help="the sale phase the windows open (default packs)")  # fmt: skip
    c.add_argument("--window-s", dest="window_s", type=int, help="window length (default 48 h)")
    c.add_argument("--notice-s", dest="notice_s", type=int, help="notice period (default 2 d)")
    c.set_defaults(func=cmd_put)

    c = inner.add_parser("show", help="a draw's spec, entries, commitment, run and waves")
    c.add_argument("draw", help="draw id")
    c.set_defaults(func=cmd_show)

    c = inner.add_parser("members", help="member lists of restricted strata (until commit)")
    members_cmds = c.add_subparsers(dest="members_command", required=True)
    m = members_cmds.add_parser("load", help="replace a restricted stratum's member list with "
                                "a file of account ids, one per line ('-': stdin)")  # fmt: skip
    m.add_argument("draw", help="draw id")
    m.add_argument("stratum", help="a restricted stratum")
    m.add_argument("file", help="account ids, one per line ('-': stdin)")
    m.set_defaults(func=cmd_members_load)
    m = members_cmds.add_parser("show", help="members per restricted stratum (and an account's)")
    m.add_argument("draw", help="draw id")
    m.add_argument("--account", help="also say which lists hold this account id")
    m.set_defaults(func=cmd_members_show)

    c = inner.add_parser("commit", help="make and seal the secret seed; print sha256(seed)")
    c.add_argument("draw", help="draw id")
    c.set_defaults(func=cmd_commit)

    c = inner.add_parser("run", help="rank every entry (after the close); resumable")
    c.add_argument("draw", help="draw id")
    c.add_argument("--beacon", help="public beacon value, hex (e.g. a published lottery draw)")
    c.add_argument("--beacon-text", dest="beacon_text", help="public beacon value, as text")
    c.add_argument("--processes", type=int, help="worker processes (draws.run_processes)")
    c.add_argument("--chunk", type=int, default=10_000, help=argparse.SUPPRESS)
    c.add_argument("--out", help="also write the transcript to this file")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_run)

    c = inner.add_parser("transcript", help="print (and save) a drawn draw's transcript")
    c.add_argument("draw", help="draw id")
    c.add_argument("--out", help="also write the transcript to this file")
    c.set_defaults(func=cmd_transcript)

    c = inner.add_parser("export", help="entries and ranking files for auditors")
    c.add_argument("draw", help="draw id")
    c.add_argument("--entries", help="write stratum<TAB>id lines, sorted by id")
    c.add_argument("--ranking", help="write rank<TAB>id lines")
    c.set_defaults(func=cmd_export)

    c = inner.add_parser("verify", help="re-run a draw from its transcript (no Redis)")
    c.add_argument("transcript", help="transcript file (draw transcript --out)")
    c.add_argument("entries", help="entries file (draw export --entries)")
    c.add_argument("--jwks", help="JWKS file to check the transcript's signature "
                   "(/.well-known/draw-jwks.json)")  # fmt: skip
    c.add_argument("--commitment", type=_commitment, metavar="HEX",
                   help="sha256(seed) as published before registration closed")  # fmt: skip
    c.add_argument("--ranking", help="exported ranking to check against the transcript")
    c.set_defaults(func=cmd_verify)

    c = inner.add_parser("release-wave", help="give the next ranked entrants their windows")
    c.add_argument("draw", help="draw id")
    size = c.add_mutually_exclusive_group(required=True)
    size.add_argument("--count", type=int, help="entrants in this wave")
    size.add_argument("--from-stock", dest="from_stock", type=int, metavar="TICKETS",
                      nargs="?", const=-1,
                      help="size the wave from the tickets left (default: the sale's stock "
                      "now) and the tickets per window the ended waves sold")  # fmt: skip
    c.add_argument("--start", required=True, type=rfc3339, help=f"window start ({clitime.HELP})")
    c.add_argument("--stratum", help="keep the wave within this stratum (e.g. club days)")
    c.add_argument("--allow-short-notice", dest="allow_short_notice", action="store_true",
                   help="allow a start sooner than the draw's notice period")  # fmt: skip
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_release_wave)

    c = inner.add_parser("waves", help="per wave: windows, buyers, tickets and conversion")
    c.add_argument("draw", help="draw id")
    c.set_defaults(func=cmd_waves)

    p = sub.add_parser("outbox", help="notices waiting for the e-mail sender: a sale's "
                       "windows (SALE), or the State programme's ticket links "
                       "(programme:GAMES)")  # fmt: skip
    inner = p.add_subparsers(dest="outbox_command", required=True)
    c = inner.add_parser("show", help="backlog of a sale's outbox")
    c.add_argument("sale", metavar="SALE|programme:GAMES", type=_target, help=TARGET_HELP)
    c.set_defaults(func=cmd_outbox_show)
    c = inner.add_parser("read", help="read notices as a consumer (JSON lines): those left "
                         "unacknowledged longer than the claim bound, then new ones")  # fmt: skip
    c.add_argument("sale", metavar="SALE|programme:GAMES", type=_target, help=TARGET_HELP)
    c.add_argument(
        "--consumer",
        default="cli",
        help="consumer name: what it reads stays its own until acked (default cli)",
    )
    c.add_argument("--count", type=_count, default=100, help="at most this many (1-10000)")
    c.add_argument("--claim-idle-s", dest="claim_idle_s", type=_positive_s,
                   help="take over notices left unacknowledged this long "
                   "(draws.outbox_claim_idle_s)")  # fmt: skip
    c.set_defaults(func=cmd_outbox_read)
    c = inner.add_parser("ack", help="acknowledge notices sent")
    c.add_argument("sale", metavar="SALE|programme:GAMES", type=_target, help=TARGET_HELP)
    c.add_argument("ids", nargs="+", help="notice ids (as outbox read prints them)")
    c.set_defaults(func=cmd_outbox_ack)
    c = inner.add_parser("trim", help="delete acknowledged notices (they carry account ids)")
    c.add_argument("sale", metavar="SALE|programme:GAMES", type=_target, help=TARGET_HELP)
    c.set_defaults(func=cmd_outbox_trim)
