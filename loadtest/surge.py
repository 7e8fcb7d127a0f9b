"""Opening-surge load test: start Guichet, create a room, run the Locust scenario headless,
write Locust's CSV + HTML reports and a short summary, stop everything.

    python -m loadtest.surge --users 500 --spawn-rate 200 --run-time 30s
    python -m loadtest.surge --url http://127.0.0.1:8080 --config guichet.toml --users 200

Without ``--url`` it starts ``python -m guichet serve`` itself (embedded Valkey in a temporary
folder, 127.0.0.1, a free port, join limits raised since every person shares 127.0.0.1),
creates the room through the admin API so that it opens ``--opens-in`` seconds later (the
first people land in the pre-queue and are shuffled at opening), and stops the server at the
end. With ``--url`` it targets a running server; tokens are minted with the dev issuer key of
``--config`` (the server must trust it: ``security.dev_issuer = true``).

Everything is bounded: Locust by ``--run-time`` and ``--stop-timeout`` (and it ends earlier
once every person has left); the Locust process is killed if it overstays. Exit code 0 when
every request got a right answer, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from guichet.config import load_settings
from guichet.embedded import free_port
from loadtest import rush
from loadtest.harness import (
    ROOT,
    GuichetServer,
    Issuer,
    draw_public,
    draw_spec,
    put_draw,
    put_room,
    room_spec,
    room_stats,
    stop_process,
)
from loadtest.report import format_summary, read_locust

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
DRAW = "lottery"
SALE = "paris-2024"
WINNERS = "winner"


def timespan_s(text: str) -> int:
    """Locust's ``--run-time`` syntax (``30``, ``30s``, ``2m``, ``1h30m``) in seconds."""
    if text.isdigit():
        return int(text)
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip())
    if not parts or not any(parts.groups()):
        raise argparse.ArgumentTypeError(f"not a time span: {text!r} (e.g. 30s, 2m, 1h30m)")
    h, m, s = (int(g or 0) for g in parts.groups())
    return h * 3600 + m * 60 + s


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtest.surge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--scenario",
        choices=["opening_surge", "registration_day", "window_rush", "steady_browsing", "sale_day"],
        default="opening_surge",
        help="opening_surge: join, wait, admit, leave; registration_day: the same, registering "
        f"for the draw {DRAW!r} while admitted; window_rush: the same, shopping the demo sale "
        f"{SALE!r} (winners with open windows); steady_browsing: availability, /me and the "
        "draw with think times; sale_day: browsers, registrants and shoppers mixed 6:2:2",
    )
    p.add_argument(
        "--locust-workers",
        type=int,
        default=0,
        help="distributed mode: a Locust master and this many worker processes (0: one process)",
    )
    p.add_argument("--users", type=int, default=500, help="people (Locust users), one life each")
    p.add_argument("--spawn-rate", type=float, default=200, help="people arriving per second")
    p.add_argument("--run-time", type=timespan_s, default="30s", help="upper bound (Locust)")
    p.add_argument("--stop-timeout", type=int, default=5, help="seconds to let people finish")
    p.add_argument("--out", type=Path, help="report folder (default loadtest/reports/surge-…)")
    p.add_argument("--room", default="surge")
    p.add_argument("--url", help="target this running server instead of starting one")
    p.add_argument("--config", help="with --url: the server's TOML (dev issuer key, audiences)")
    p.add_argument("--no-create-room", action="store_true", help="with --url: room exists")
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument("--rate", type=float, default=100.0, help="room admission rate, people/s")
    p.add_argument("--max-active", type=int, default=200, help="room max_active")
    p.add_argument("--opens-in", type=float, default=5.0, help="seconds until the room opens")
    p.add_argument(
        "--poll-scale", type=float, default=0.2, help="factor on poll_after_ms, Retry-After"
    )
    p.add_argument("--think-time", type=float, default=1.0, help="seconds admitted before leaving")
    return p


def merge_people(files: list[Path]) -> dict[str, Any]:
    """The people tallies of every Locust process (one per worker in distributed mode):
    counts add up, lists join, wall time is the longest."""
    merged: dict[str, Any] = {}
    for f in files:
        for key, value in json.loads(f.read_text()).items():
            if key == "wall_s":
                merged[key] = max(merged.get(key, 0), value)
            elif isinstance(value, list):
                merged[key] = sorted(merged.get(key, []) + value) if key == "queue_s" else (
                    merged.get(key, []) + value)  # fmt: skip
            else:
                merged[key] = merged.get(key, 0) + value
    return merged


def needs_sale(args: argparse.Namespace) -> bool:
    return str(args.scenario) in ("window_rush", "steady_browsing", "sale_day")


def needs_draw(args: argparse.Namespace) -> bool:
    return str(args.scenario) in ("registration_day", "steady_browsing", "sale_day")


def run_locust(args: argparse.Namespace, base_url: str, issuer_args: list[str], out: Path) -> int:
    """Locust headless in its own process (it monkey-patches with gevent), bounded in time;
    with ``--locust-workers N``, a master and N worker processes (distributed mode)."""
    prefix = out / "locust"
    scenario_args = [
        "--room",
        args.room,
        "--poll-scale",
        str(args.poll_scale),
        "--think-time",
        str(args.think_time),
        "--surge-report",
        str(out / "people.json"),
        "--final-csv",
        str(out / "final"),
        *issuer_args,
        *(["--draw", DRAW] if needs_draw(args) else []),
        *(["--sale", SALE] if needs_sale(args) else []),
        *(["--account-prefix", WINNERS] if args.scenario == "window_rush" else []),
        *(["--winner-prefix", WINNERS] if args.scenario == "sale_day" else []),
    ]
    locustfile = ["-m", "locust", "-f", str(SCENARIOS / f"{args.scenario}.py")]
    master_port = free_port()
    distributed = (
        ["--master", "--expect-workers", str(args.locust_workers), "--master-bind-host",
         "127.0.0.1", "--master-bind-port", str(master_port)]
        if args.locust_workers else []
    )  # fmt: skip
    command = [
        sys.executable,
        *locustfile,
        *distributed,
        "--headless",
        "--only-summary",
        "--host",
        base_url,
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        f"{args.run_time}s",
        "--stop-timeout",
        str(args.stop_timeout),
        "--csv",
        str(prefix),
        "--html",
        str(out / "report.html"),
        *scenario_args,
    ]
    bound = args.run_time + args.stop_timeout + 60
    workers: list[subprocess.Popen[bytes]] = []
    with (out / "locust.log").open("wb") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        for _ in range(args.locust_workers):
            worker = [sys.executable, *locustfile, "--worker", "--master-host", "127.0.0.1",
                      "--master-port", str(master_port), *scenario_args]  # fmt: skip
            workers.append(subprocess.Popen(worker, cwd=ROOT, stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
        try:
            return proc.wait(bound)
        except subprocess.TimeoutExpired:
            print(f"locust overstayed {bound} s; stopping it", file=sys.stderr)
            stop_process(proc)
            return 1
        finally:
            for p in [proc, *workers]:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(15)  # workers end when their master does
                if p.poll() is None:
                    p.kill()
                    p.wait()


def _issuer_args(issuer: Issuer, key_file: str) -> list[str]:
    return [
        "--dev-key-file",
        key_file,
        "--token-issuer",
        issuer.issuer,
        "--token-audience",
        issuer.audience,
    ]


def _copy(source: Path, target: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.copyfile(source, target)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out: Path = args.out or ROOT / "loadtest" / "reports" / time.strftime("surge-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    breaches: list[str] = []
    with contextlib.ExitStack() as stack:
        if args.url:
            settings = load_settings(args.config)
            base_url = args.url.rstrip("/")
            key_file = settings.security.dev_issuer_key_file
            issuer = Issuer.from_settings(settings)
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="guichet-surge-")))
            server = GuichetServer(tmp, workers=args.workers)
            stack.callback(_copy, server.log_file, out / "server.log")  # after the stop
            stack.enter_context(server)
            base_url = server.url
            key_file = server.settings().security.dev_issuer_key_file
            issuer = server.issuer()
        if not (args.url and args.no_create_room):
            spec = room_spec(
                opens_in_s=args.opens_in, rate_per_s=args.rate, max_active=args.max_active
            )
            if needs_sale(args):
                settings_now = load_settings(args.config) if args.url else server.settings()
                rush.prepare(base_url, issuer, settings_now, SALE, WINNERS, args.users)
                spec["sale"] = SALE
            if needs_draw(args):  # the room guards the draw's entries too (room/guard.py)
                spec["draw"] = DRAW
            put_room(base_url, issuer, args.room, spec)
            if needs_draw(args):
                put_draw(base_url, issuer, DRAW, draw_spec(closes_in_s=3600))
        print(
            f"surge: {args.users} people at {args.spawn_rate:g}/s against {base_url} room "
            f"{args.room!r} (opens in {args.opens_in:g} s, {args.rate:g}/s, max active "
            f"{args.max_active}); at most {args.run_time} s",
            flush=True,
        )
        code = run_locust(args, base_url, _issuer_args(issuer, key_file), out)
        stats = room_stats(base_url, issuer, args.room)
        if needs_sale(args):
            settings_now = load_settings(args.config) if args.url else server.settings()
            breaches = rush.audit(settings_now, SALE)
        draw = draw_public(base_url, DRAW) if needs_draw(args) else None

    people = merge_people(sorted(out.glob("people*.json")))
    try:
        summary = read_locust(out / "final", people)
    except (OSError, ValueError) as exc:
        print(f"no Locust statistics ({exc}); see {out / 'locust.log'}", file=sys.stderr)
        return 1
    data = summary.as_dict()
    data["room"] = {
        k: stats.get(k) for k in ("issued", "serving", "admitted_total", "active", "prequeue")
    }
    if draw is not None:
        data["draw"] = {"entries": draw.get("entries")}
    if needs_sale(args):
        data["shop_audit_breaches"] = breaches
    data["locust_exit_code"] = code
    data["wall_s"] = round(time.monotonic() - started, 1)
    (out / "summary.json").write_text(json.dumps(data, indent=1))
    text = format_summary(summary)
    text += (
        f"\nroom at the end: issued {stats.get('issued')}, serving {stats.get('serving')}, "
        f"admitted {stats.get('admitted_total')}, active {stats.get('active')}"
    )
    if draw is not None:
        text += f"\ndraw {DRAW!r} entries at the end: {draw.get('entries')}"
    if needs_sale(args):
        text += f"\nshop audit (available + held + sold = loaded): {len(breaches)} breaches"
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    print(f"reports: {out} (report.html, final_stats.csv, locust_*.csv, summary.json, locust.log)")
    ok = code == 0 and summary.failed == 0 and summary.total.failures == 0
    ok = ok and not breaches
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
