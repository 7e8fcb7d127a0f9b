"""Where the time goes: digest collapsed stacks (``py-spy record --format raw``, as written
by ``python -m loadtest.bench --py-spy DIR``) into inclusive and self shares per function.

    python -m loadtest.stacks DIR/status.txt [--top 40] [--rps 13000] [--grep guichet/]

Shares are of the main thread's samples (the event loop; worker threads are left out). The
benchmark records with ``py-spy --idle``, so 100 % is the main thread's wall time, idle waits
included (they show as self time of ``Runner.run``); ``--rps`` (the throughput measured while
sampling) then turns a share into µs per request: ``share * 1e6 / rps``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass
class Profile:
    total: int
    inclusive: Counter[str]  # function -> samples with it anywhere on the stack
    self_: Counter[str]  # function -> samples with it on top


def function_of(frame: str) -> str:
    """``front (guichet/app.py:124)`` → ``front (guichet/app.py)``: one entry per function."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    return f"{match['func']} ({match['file']})"


#: Frames of threads other than the event loop's (asyncio.to_thread workers, mostly idle).
OTHER_THREADS = "Thread._bootstrap (threading.py)"


def parse(lines: Iterable[str], *, main_thread_only: bool = True) -> Profile:
    """Sum the samples; by default only the main thread's (the event loop)."""
    total = 0
    inclusive: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    for raw in lines:
        stack, _, count_text = raw.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [function_of(f) for f in stack.split(";") if f]
        if not frames or (main_thread_only and OTHER_THREADS in frames):
            continue
        total += count
        for name in set(frames):
            inclusive[name] += count
        self_[frames[-1]] += count
    return Profile(total, inclusive, self_)


def report(profile: Profile, top: int = 40, rps: float | None = None, grep: str = "") -> str:
    def cost(samples: int) -> str:
        share = samples / profile.total if profile.total else 0.0
        if rps:
            return f"{100 * share:5.1f}% {share * 1e6 / rps:7.1f} µs/req"
        return f"{100 * share:5.1f}%"

    out = [f"{profile.total} samples"]
    for title, counter in (("inclusive", profile.inclusive), ("self", profile.self_)):
        out.append(f"-- {title}")
        shown = 0
        for name, samples in counter.most_common():
            if grep and grep not in name:
                continue
            out.append(f"{cost(samples)}  {name}")
            shown += 1
            if shown >= top:
                break
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--grep", default="", help="only functions whose name contains this")
    parser.add_argument("--rps", type=float, help="throughput while sampling: adds µs/request")
    args = parser.parse_args(argv)
    profile = parse(args.file.read_text().splitlines())
    print(report(profile, args.top, args.rps, args.grep))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
