"""Numbers out of load-generator output: wrk's text, Locust's CSV files, ratios, percentiles.

No Locust import here (it monkey-patches the process with gevent): the runners and the tests
use these functions freely.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# --- wrk ---------------------------------------------------------------------------------


@dataclass
class WrkRun:
    """One wrk run: throughput and latency percentiles (ms), and what went wrong."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: int = 0


TIMES = "\u00d7"  # the multiplication sign of the Markdown tables
#: The issue's bound on every route's tail: p99 at most this many times p50.
TAIL_GOAL = 5.0
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _latency_ms(text: str, pct: str) -> float:
    match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    if not match:
        return math.nan
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(text: str) -> WrkRun:
    """Parse ``wrk --latency`` output (the human summary; no Lua ``done`` needed)."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in ", text)
    if rps is None or total is None:
        raise ValueError(f"not wrk output:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return WrkRun(
        requests=int(total.group(1)),
        rps=float(rps.group(1)),
        p50_ms=_latency_ms(text, "50"),
        p99_ms=_latency_ms(text, "99"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
    )


# --- ratios ------------------------------------------------------------------------------


@dataclass
class Row:
    """A benchmark line: a target's throughput, its ratio to the baseline, its latency."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    ratio: float = math.nan
    goal: float | None = None  # the ratio the issue asks for, if any
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        return "met" if self.ratio >= self.goal else "MISSED"

    @property
    def tail(self) -> float:
        """p99 / p50: how far the tail is from the median (the issue: at most 5x)."""
        return self.p99_ms / self.p50_ms if self.p50_ms > 0 else math.nan

    @property
    def tail_verdict(self) -> str:
        return "met" if self.tail <= TAIL_GOAL else "MISSED"


def with_ratios(rows: Sequence[Row], baseline: float) -> list[Row]:
    """Every row's ratio to ``baseline`` req/s (the bare endpoint measured in the same run)."""
    if not baseline > 0:
        raise ValueError("the baseline throughput must be positive")
    for row in rows:
        row.ratio = row.rps / baseline
    return list(rows)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def combine_rounds(rounds: Sequence[Sequence[Row]]) -> list[Row]:
    """Several rounds of the same targets (each round with ratios to its own baseline) →
    one row per target: the medians of req/s, p50, p99 and ratio; the ratio's range in
    ``note`` when there was more than one round."""
    if not rounds:
        return []
    combined = []
    for i, first in enumerate(rounds[0]):
        same = [r[i] for r in rounds]
        if any(r.name != first.name for r in same):
            raise ValueError("rounds must list the same targets in the same order")
        row = Row(
            first.name,
            median([r.rps for r in same]),
            median([r.p50_ms for r in same]),
            median([r.p99_ms for r in same]),
            ratio=median([r.ratio for r in same]),
            goal=first.goal,
        )
        notes = [r.note for r in same if r.note]
        if len(same) > 1:
            ratios = [r.ratio for r in same]
            notes.insert(0, f"ratio over {len(same)} rounds {min(ratios):.2f}-{max(ratios):.2f}")
        row.note = "; ".join(dict.fromkeys(notes))
        combined.append(row)
    return combined


def ratio_table(rows: Sequence[Row], *, markdown: bool = False) -> str:
    """The rows as a fixed-width text table, or as a Markdown table (docs/benchmarks.md): the
    ratio to the baseline against its goal, and p99/p50 against :data:`TAIL_GOAL`."""
    if markdown:
        lines = [
            "| target | req/s | ratio | p50 ms | p99 ms | p99/p50 | goal |",
            "|---|---:|---:|---:|---:|---|---|",
        ]
        for r in rows:
            goal = f"≥ {r.goal:.2g}{TIMES} {r.verdict}" if r.goal is not None else ""
            tail = f"{r.tail:.1f}{TIMES} {r.tail_verdict}"
            lines.append(
                f"| {r.name} | {r.rps:,.0f} | {r.ratio:.2f}{TIMES} | {r.p50_ms:.2f} | "
                f"{r.p99_ms:.2f} | {tail} | {goal} |"
            )
        return "\n".join(lines)
    width = max([len(r.name) for r in rows] + [6])
    lines = [
        f"{'target':{width}} {'req/s':>9} {'ratio':>7} {'p50 ms':>8} {'p99 ms':>8}"
        f"  {'p99/p50 ≤5x':<13} goal"
    ]
    for r in rows:
        goal = f"≥{r.goal:.2g}x {r.verdict}" if r.goal is not None else ""
        tail = f"{r.tail:5.1f}x {r.tail_verdict}"
        lines.append(
            f"{r.name:{width}} {r.rps:9.0f} {r.ratio:6.2f}x {r.p50_ms:8.2f} {r.p99_ms:8.2f}"
            f"  {tail:<13} {goal}"
        )
    return "\n".join(lines)


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; NaN when empty."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# --- Locust ------------------------------------------------------------------------------


@dataclass
class Endpoint:
    """One line of Locust's ``*_stats.csv`` (times in ms)."""

    method: str
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class Summary:
    endpoints: list[Endpoint]
    total: Endpoint
    failures: dict[str, int] = field(default_factory=dict)  # kind -> occurrences
    people: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def as_dict(self) -> dict[str, Any]:
        def ep(e: Endpoint) -> dict[str, Any]:
            return {k: _jsonable(v) for k, v in e.__dict__.items()}

        people = dict(self.people)
        queue = people.pop("queue_s", [])
        if queue:
            people["queue_s_p50"] = percentile(queue, 50)
            people["queue_s_p95"] = percentile(queue, 95)
            people["queue_s_max"] = max(queue)
        return {
            "total": ep(self.total),
            "endpoints": [ep(e) for e in self.endpoints],
            "failures": self.failures,
            "people": people,
        }


def _jsonable(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "N/A" when an endpoint saw no request
        return math.nan


_WRAPPED = re.compile(r"^\w+\((['\"])(.*)\1\)$", re.DOTALL)


def failure_kind(error: str) -> str:
    """``CatchResponseError('status: position went up')`` → ``status: position went up``."""
    match = _WRAPPED.match(error.strip())
    return match.group(2) if match else error.strip()


def read_locust(prefix: str | Path, people: dict[str, Any] | None = None) -> Summary:
    """Read ``<prefix>_stats.csv`` and ``<prefix>_failures.csv`` written by ``--csv``."""
    endpoints: list[Endpoint] = []
    total: Endpoint | None = None
    with Path(f"{prefix}_stats.csv").open(newline="") as fh:
        for line in csv.DictReader(fh):
            e = Endpoint(
                method=line["Type"],
                name=line["Name"],
                requests=int(line["Request Count"]),
                failures=int(line["Failure Count"]),
                rps=_number(line["Requests/s"]),
                p50_ms=_number(line["50%"]),
                p95_ms=_number(line["95%"]),
                p99_ms=_number(line["99%"]),
                max_ms=_number(line["Max Response Time"]),
            )
            if e.name == "Aggregated":
                total = e
            else:
                endpoints.append(e)
    if total is None:
        raise ValueError(f"{prefix}_stats.csv has no Aggregated line")
    failures: dict[str, int] = {}
    failures_file = Path(f"{prefix}_failures.csv")
    if failures_file.exists():
        with failures_file.open(newline="") as fh:
            for line in csv.DictReader(fh):
                kind = failure_kind(line["Error"])
                failures[kind] = failures.get(kind, 0) + int(line["Occurrences"])
    return Summary(endpoints, total, failures, dict(people or {}))


def format_summary(summary: Summary) -> str:
    """A short human summary: req/s, percentiles per endpoint, failures by kind, people."""

    def line(e: Endpoint) -> str:
        return (
            f"{e.name:12} {e.requests:9d} {e.failures:8d} {e.rps:9.1f} "
            f"{e.p50_ms:8.0f} {e.p95_ms:8.0f} {e.p99_ms:8.0f} {e.max_ms:8.0f}"
        )

    out = [
        f"{'endpoint':12} {'requests':>9} {'failed':>8} {'req/s':>9} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}",
        *(line(e) for e in summary.endpoints),
        line(summary.total),
    ]
    if summary.failures:
        out.append("failures by kind:")
        out += [
            f"  {count:7d}  {kind}"
            for kind, count in sorted(summary.failures.items(), key=lambda kv: -kv[1])
        ]
    else:
        out.append("failures: none")
    people = summary.as_dict()["people"]
    if people:
        unfinished = people["people_started"] - people.get("people_finished", 0)
        out.append(
            "people: {people_started} started, {people_joined} joined, {people_admitted} "
            "admitted, {people_left} left, {people_gave_up} gave up, {unfinished} still on "
            "their way at the end; {status_polls} status polls, {admit_retries} admit retries "
            "(room full / not ready)".format(unfinished=unfinished, **people)
        )
        if "queue_s_p50" in people:
            out.append(
                f"queue time (join → admission): p50 {people['queue_s_p50']:.2f} s, "
                f"p95 {people['queue_s_p95']:.2f} s, max {people['queue_s_max']:.2f} s"
            )
    return "\n".join(out)
