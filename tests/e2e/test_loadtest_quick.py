"""The load-test tooling works: the opening-surge scenario runs clean against a real server
for a few seconds, and the numbers it and the benchmark print are computed right."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from loadtest import bench
from loadtest.checks import Numbers, Watch, Wrong, check_admission
from loadtest.harness import GuichetServer, parse_assignment
from loadtest.report import (
    Row,
    combine_rounds,
    failure_kind,
    format_summary,
    parse_wrk,
    percentile,
    ratio_table,
    read_locust,
    with_ratios,
)
from loadtest.surge import timespan_s

ROOT = Path(__file__).resolve().parents[2]
needs_locust = pytest.mark.skipif(
    importlib.util.find_spec("locust") is None, reason="pip install -e '.[loadtest]'"
)


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GUICHET_", "LOCUST_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --- the scenario, for real ----------------------------------------------------------------


@pytest.mark.slow
@needs_locust
def test_opening_surge_scenario_loads() -> None:
    done = _run(["-m", "locust", "-f", "loadtest/scenarios/opening_surge.py", "--list"], 60)
    assert done.returncode == 0, done.stderr
    assert "Person" in done.stdout


@pytest.mark.slow
@needs_locust
def test_opening_surge_runs_clean(tmp_path: Path) -> None:
    """20 people, at most 5 s of Locust: all join, wait, get admitted, leave; no failure."""
    out = tmp_path / "surge"
    args = [
        "-m", "loadtest.surge", "--users", "20", "--spawn-rate", "20", "--run-time", "5s",
        "--stop-timeout", "2", "--opens-in", "1", "--rate", "50", "--max-active", "10",
        "--poll-scale", "0.1", "--think-time", "0.2", "--out", str(out),
    ]  # fmt: skip
    done = _run(args, timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n" + (
        (out / "locust.log").read_text() if (out / "locust.log").exists() else ""
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failures"] == {}
    assert summary["total"]["failures"] == 0
    people = summary["people"]
    assert people["people_joined"] == people["people_admitted"] == people["people_left"] == 20
    assert people["distinct_numbers"] == 20
    names = {e["name"]: e for e in summary["endpoints"]}
    assert names["join"]["requests"] == names["admit"]["requests"] - people["admit_retries"]
    assert names["status"]["requests"] >= 1
    assert summary["room"]["admitted_total"] == 20
    assert (out / "report.html").stat().st_size > 0
    assert "failures: none" in done.stdout


needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="apt-get install wrk")


@pytest.mark.slow
@pytest.mark.timeout(400)
@needs_wrk
def test_bench_compares_two_configs_with_two_workers_and_first_confirms() -> None:
    """The runner, briefly: two variants (own services), 1 and 2 workers each, the confirm
    target; every measured confirm a first one, rows labelled by variant, N/1 ratios."""
    args = [
        "-m", "loadtest.bench", "--duration", "1", "--warmup", "1", "--rounds", "1",
        "--accounts", "100", "--first-sight-tokens", "0", "--only", "confirm",
        "--compare", "a:redis.max_connections=16", "--compare", "b:redis.max_connections=32",
        "--workers", "2", "--markdown",
    ]  # fmt: skip
    done = _run(args, timeout=400)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    out = done.stdout
    for label in ("a 1w", "a 2w", "b 1w", "b 2w"):
        assert f"| [{label}] shop confirm" in out
    assert "POOL TOO SMALL" not in out
    assert out.count("every measured request a first one") == 4
    assert "p99/p50" in out
    assert (
        "[b 2w] shop confirm (each a held pack; answers after the AOF fsync, WAITAOF): "
        in (out.split("workers, aggregate throughput against 1 worker")[1])
    )


@needs_wrk
def test_bench_refuses_an_unknown_config_key_before_measuring() -> None:
    done = _run(["-m", "loadtest.bench", "--duration", "1", "--compare",
                 "typo:redis.data_plne=pool"], timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert "data_plne" in done.stderr
    assert "minted" not in done.stdout  # nothing was prepared


# --- summary and ratio maths -----------------------------------------------------------------

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8080/ok
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.80ms  400.00us  12.00ms   90.00%
    Req/Sec    35.20k     1.10k   37.00k    70.00%
  Latency Distribution
     50%  750.00us
     75%    1.90ms
     90%    2.20ms
     99%    1.20s
  351234 requests in 10.00s, 52.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 17
Requests/sec:  35123.40
Transfer/sec:      5.20MB
"""


def test_parse_wrk_reads_throughput_percentiles_and_errors() -> None:
    run = parse_wrk(WRK_OUTPUT)
    assert run.requests == 351_234
    assert run.rps == pytest.approx(35_123.4)
    assert run.p50_ms == pytest.approx(0.75)  # µs → ms
    assert run.p99_ms == pytest.approx(1200.0)  # s → ms
    assert run.non_2xx == 17
    assert run.socket_errors == 3
    with pytest.raises(ValueError, match="not wrk output"):
        parse_wrk("nothing here")


def test_ratios_to_the_baseline_and_goal_verdicts() -> None:
    rows = with_ratios(
        [
            Row("bare", 40_000, 1.0, 2.0),
            Row("status", 32_000, 1.5, 3.0, goal=0.8),
            Row("join", 18_000, 3.0, 9.0, goal=0.5),
        ],
        40_000,
    )
    assert [r.ratio for r in rows] == pytest.approx([1.0, 0.8, 0.45])
    assert [r.verdict for r in rows] == ["", "met", "MISSED"]
    text = ratio_table(rows)
    assert "0.80x" in text
    assert "MISSED" in text
    markdown = ratio_table(rows, markdown=True).splitlines()
    assert markdown[0].startswith("| target | req/s | ratio")
    assert markdown[4] == (
        "| join | 18,000 | 0.45\u00d7 | 3.00 | 9.00 | 3.0\u00d7 met | ≥ 0.5\u00d7 MISSED |"
    )
    with pytest.raises(ValueError, match="positive"):
        with_ratios(rows, 0)


def test_tails_over_five_times_the_median_are_flagged() -> None:
    rows = with_ratios([Row("bare", 40_000, 1.0, 5.0), Row("hold", 8_000, 4.0, 80.0, goal=0.4)],
                       40_000)  # fmt: skip
    assert [r.tail for r in rows] == [5.0, 20.0]
    assert [r.tail_verdict for r in rows] == ["met", "MISSED"]
    text = ratio_table(rows).splitlines()
    assert "p99/p50" in text[0]
    assert "20.0x MISSED" in text[2]
    assert "≥0.4x MISSED" in text[2]
    assert "| 20.0\u00d7 MISSED | ≥ 0.4\u00d7 MISSED |" in ratio_table(rows, markdown=True)


def test_service_config_and_compare_make_variants() -> None:
    assert parse_assignment("redis.data_plane=pool") == {"redis": {"data_plane": "pool"}}
    assert parse_assignment("server.workers=2") == {"server": {"workers": 2}}
    assert parse_assignment('rooms.x="a b"') == {"rooms": {"x": "a b"}}
    for bad in ("redis", "data_plane=pool", "redis.=x", ".x=1"):
        with pytest.raises(ValueError, match=r"SECTION\.KEY=VALUE"):
            parse_assignment(bad)
    args = argparse.Namespace(
        service_config=["redis.max_connections=32", "server.backlog=512"],
        compare=["before:redis.data_plane=pool", "after:redis.data_plane=multiplex,"
                 "redis.max_connections=8"],
        workers=1,
    )  # fmt: skip
    before, after = bench.variants_of(args)
    assert before.label == "before"
    assert before.overrides == {
        "redis": {"max_connections": 32, "data_plane": "pool"}, "server": {"backlog": 512}
    }  # fmt: skip
    assert after.overrides["redis"] == {"max_connections": 8, "data_plane": "multiplex"}
    assert before.prefix("status") == "[before] status"
    args.workers = 2
    labels = [(v.label, v.workers) for v in bench.variants_of(args)]
    assert labels == [("before 1w", 1), ("before 2w", 2), ("after 1w", 1), ("after 2w", 2)]
    args.compare = ["x:a.b=1", "x:a.b=2"]
    with pytest.raises(ValueError, match="must differ"):
        bench.variants_of(args)
    with pytest.raises(ValueError, match=r"NAME\[@DIR\]:KEY=VALUE"):
        bench.parse_compare("nocolon")


def test_a_variant_can_run_another_checkouts_server(tmp_path: Path) -> None:
    here = Path(__file__).resolve().parents[2]
    old = bench.parse_compare(f"before@{here}")
    assert (old.label, old.source, old.overrides) == ("before", here, {})
    tuned = bench.parse_compare(f"x@{here}:redis.data_plane=pool")
    assert tuned.overrides == {"redis": {"data_plane": "pool"}}
    assert tuned.source == here
    with pytest.raises(ValueError, match="not a Guichet checkout"):
        bench.parse_compare(f"before@{tmp_path}")
    with pytest.raises(ValueError, match=r"NAME\[@DIR\]"):
        bench.parse_compare("before@")
    server = GuichetServer(tmp_path / "w", source=here)
    path = server._env()["PYTHONPATH"].split(os.pathsep)
    assert path[0] == str(here / "server")


def test_worker_scaling_is_n_workers_over_one_of_the_same_variant() -> None:
    args = argparse.Namespace(service_config=None, compare=None, workers=2)
    variants = bench.variants_of(args)
    assert [v.label for v in variants] == ["1w", "2w"]
    rows = [Row("bare", 40_000, 1, 2), Row("[1w] status", 10_000, 1, 2),
            Row("[2w] status", 16_000, 1, 2)]  # fmt: skip
    assert bench.worker_scaling(rows, variants)[1] == "  [2w] status: 1.60x the 1-worker req/s"


def test_rounds_combine_into_medians_with_the_ratio_range() -> None:
    def round_of(base: float, status: float) -> list[Row]:
        return with_ratios([Row("bare", base, 1, 2), Row("status", status, 2, 4, goal=0.8)], base)

    combined = combine_rounds(
        [round_of(40_000, 20_000), round_of(30_000, 18_000), round_of(36_000, 18_000)]
    )
    bare, status = combined
    assert bare.rps == 36_000
    assert bare.ratio == 1.0
    assert status.rps == 18_000
    # per-round ratios 0.5, 0.6, 0.5: the median of the ratios, not the ratio of the medians
    assert status.ratio == pytest.approx(0.5)
    assert status.goal == 0.8
    assert status.note == "ratio over 3 rounds 0.50-0.60"
    with pytest.raises(ValueError, match="same targets"):
        combine_rounds([round_of(1, 1), [Row("other", 1, 1, 1), Row("x", 1, 1, 1)]])


def test_percentile_is_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == 5.0
    assert percentile(values, 0) == 1.0
    assert math.isnan(percentile([], 50))


STATS_CSV = """\
Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,\
80%,90%,95%,98%,99%,99.9%,99.99%,100%
POST,join,20,0,40,41.0,20.0,55.0,439.0,4.0,0.0,40,45,47,50,52,55,55,55,55,55,55
GET,status,300,3,2,2.5,0.3,9.0,198.0,60.0,0.6,2,3,3,3,4,4,6,6,9,9,9
POST,leave,0,0,0,0,0,0,0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A
,Aggregated,320,3,2,4.9,0.3,55.0,212.0,64.0,0.6,2,3,4,4,7,13,42,51,55,55,55
"""
FAILURES_CSV = """\
Method,Name,Error,Occurrences
GET,status,CatchResponseError('status: position went up'),2
GET,status,"CatchResponseError(""status: HTTP 500 internal"")",1
"""


def test_locust_csv_summary_groups_failures_by_kind(tmp_path: Path) -> None:
    (tmp_path / "final_stats.csv").write_text(STATS_CSV)
    (tmp_path / "final_failures.csv").write_text(FAILURES_CSV)
    people = {
        "people_started": 20, "people_joined": 20, "people_admitted": 19, "people_left": 19,
        "people_gave_up": 1, "people_finished": 19, "status_polls": 300, "admit_retries": 0,
        "queue_s": [1.0, 2.0, 3.0, 4.0],
    }  # fmt: skip
    summary = read_locust(tmp_path / "final", people)
    assert [e.name for e in summary.endpoints] == ["join", "status", "leave"]
    assert summary.total.requests == 320
    assert summary.total.rps == 64.0
    assert (summary.total.p50_ms, summary.total.p95_ms, summary.total.p99_ms) == (2, 13, 51)
    assert math.isnan(summary.endpoints[2].p99_ms)  # "N/A": no request
    assert summary.failures == {"status: position went up": 2, "status: HTTP 500 internal": 1}
    assert summary.failed == 3
    data = summary.as_dict()
    assert data["endpoints"][2]["p99_ms"] is None  # JSON-safe
    assert data["people"]["queue_s_p50"] == 2.0
    assert data["people"]["queue_s_p95"] == 4.0
    text = format_summary(summary)
    assert "failures by kind:" in text
    assert "position went up" in text
    assert "19 admitted" in text
    assert "1 still on their way" in text
    assert failure_kind("ConnectionRefusedError(111, 'refused')") == (
        "ConnectionRefusedError(111, 'refused')"
    )


def test_run_time_spans() -> None:
    assert [timespan_s(t) for t in ("30", "30s", "2m", "1h30m", "1m5s")] == [
        30, 30, 120, 5400, 65,
    ]  # fmt: skip
    with pytest.raises(Exception, match="not a time span"):
        timespan_s("soon")


# --- what counts as a wrong answer -----------------------------------------------------------


def _status(**fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "room": "r", "state": "waiting", "number": 10, "position": 6, "ahead": 5,
        "serving": 5, "admission_rate": 2.0, "poll_after_ms": 1000,
        "opens_at": "2026-11-23T12:00:00Z", "closes_at": "2026-11-24T12:00:00Z",
    }  # fmt: skip
    body.update(fields)
    return body


def test_watch_accepts_a_normal_journey() -> None:
    watch = Watch("acc-1", "r", Numbers())
    watch.see(_status(state="prequeue", number=None, position=None, ahead=None, serving=0))
    watch.see(_status())
    watch.see(_status(position=3, ahead=2, serving=8))
    watch.see(_status(state="ready", position=0, ahead=0, serving=11))
    assert watch.number == 10


@pytest.mark.parametrize(
    ("later", "kind"),
    [
        (_status(number=11, position=7, ahead=6), "number changed"),
        (_status(state="sold_out"), "unexpected state sold_out"),
        (_status(state="limbo"), "unknown state"),
        (_status(state="prequeue", number=None, position=None, ahead=None), "state went back"),
        (_status(position=4, ahead=5), "position inconsistent"),
        (_status(room="other"), "wrong room"),
        (_status(poll_after_ms="soon"), "bad field poll_after_ms"),
        ("<html>", "not a JSON object"),
    ],
)
def test_watch_flags_wrong_answers(later: object, kind: str) -> None:
    watch = Watch("acc-1", "r", Numbers())
    watch.see(_status())
    with pytest.raises(Wrong, match=kind):
        watch.see(later)


def test_position_going_up_and_duplicate_numbers_are_failures() -> None:
    numbers = Numbers()
    watch = Watch("acc-1", "r", numbers)
    watch.see(_status(position=3, ahead=2, serving=8))
    with pytest.raises(Wrong, match="position went up"):
        # an older snapshot (e.g. another worker's): serving lower, so the position higher
        watch.see(_status(position=4, ahead=3, serving=7))
    other = Watch("acc-2", "r", numbers)
    with pytest.raises(Wrong, match="duplicate number"):
        other.see(_status(position=3, ahead=2, serving=8))


def test_serving_going_down_is_a_failure() -> None:
    watch = Watch("acc-1", "r", Numbers())
    prequeue = {"state": "prequeue", "number": None, "position": None, "ahead": None}
    watch.see(_status(**prequeue, serving=5))
    with pytest.raises(Wrong, match="serving went down"):
        watch.see(_status(**prequeue, serving=4))


def test_admission_must_carry_its_token_in_the_redirect() -> None:
    good = {
        "room": "r", "token": "tok", "ticket": "t2", "token_expires_at": "x",
        "session_expires_at": "y", "redirect_url": "https://shop/enter?guichet_token=tok",
    }  # fmt: skip
    assert check_admission(good, "r") is good
    with pytest.raises(Wrong, match="redirect without token"):
        check_admission({**good, "redirect_url": "https://shop/enter"}, "r")


@pytest.mark.slow
@needs_locust
def test_registration_day_runs_clean(tmp_path: Path) -> None:
    """20 people through the room into the draw: each registers once (201), a repeat gives the
    same entry (200), and the draw counts exactly 20 entries."""
    out = tmp_path / "regday"
    args = [
        "-m", "loadtest.surge", "--scenario", "registration_day", "--users", "20",
        "--spawn-rate", "20", "--run-time", "8s", "--stop-timeout", "2", "--opens-in", "1",
        "--rate", "50", "--max-active", "10", "--poll-scale", "0.1", "--think-time", "0.1",
        "--out", str(out),
    ]  # fmt: skip
    done = _run(args, timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total"]["failures"] == 0
    people = summary["people"]
    assert people["registered"] == people["registration_repeats_ok"] == 20
    assert people["entry_checks_ok"] == 20
    assert summary["draw"]["entries"] == {"general": 20}


@pytest.mark.slow
def test_draw_benchmark_runs_small(tmp_path: Path) -> None:
    """The draw-run benchmark end to end on 20,000 entries: every entry ranked and stored."""
    done = _run(["-m", "loadtest.draw_bench", "--entries", "20000", "--json",
                 str(tmp_path / "r.json")], timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (result,) = json.loads((tmp_path / "r.json").read_text())
    assert result["entries"] == 20000
    assert result["seconds"] > 0
    assert result["rss_main_mib"] > 0
    assert "20,000 entries" in done.stdout


@pytest.mark.slow
def test_programme_benchmark_runs_small_and_its_audit_is_clean(tmp_path: Path) -> None:
    """The State programme benchmark end to end on 2,000 candidates (a 1,600-ticket pool):
    every phase ran, every entry ranked, withdrawals reassigned or returned, no breach."""
    done = _run(["-m", "loadtest.programme", "--candidates", "2000", "--pool", "1600",
                 "--json", str(tmp_path / "r.json")], timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    phases = {p["name"]: p for p in report["phases"]}
    assert list(phases) == ["pool", "lotteries", "register", "close", "run", "assign",
                            "withdraw", "reclaim", "audit", "purge"]  # fmt: skip
    assert report["breaches"] == []
    assert phases["pool"]["count"] == 1600
    assert phases["register"]["count"] == phases["run"]["count"] == 2000
    assert phases["purge"]["count"] == 2000  # every name erased
    counts = report["counts"]
    assert 0 < counts["assigned"] <= 1600
    assert counts["withdrawn_reassigned"] > 0
    assert counts["withdrawn_returned"] > 0
    assert (
        phases["withdraw"]["count"] == counts["withdrawn_reassigned"] + counts["withdrawn_returned"]
    )
    for games in ("olympic", "paralympic"):  # nothing allocated is left after the reclaim
        assert counts[f"{games}_pool"] + counts[f"{games}_assigned"] == counts[f"{games}_loaded"]
    assert counts["olympic_loaded"] + counts["paralympic_loaded"] == 1600
    assert phases["register"]["p50_ms"] <= phases["register"]["p99_ms"]
    assert phases["run"]["rss_mib"] > 0
    assert phases["run"]["valkey_peak_mib"] > 0


@pytest.mark.slow
@needs_locust
def test_window_rush_runs_clean(tmp_path: Path) -> None:
    """20 winners through the room into the shop: every hold, confirm and abandon answered
    right, and the stock invariant holds after the run."""
    out = tmp_path / "rush"
    args = [
        "-m", "loadtest.surge", "--scenario", "window_rush", "--users", "20",
        "--spawn-rate", "20", "--run-time", "10s", "--stop-timeout", "2", "--opens-in", "1",
        "--rate", "50", "--max-active", "10", "--poll-scale", "0.1", "--think-time", "0.1",
        "--out", str(out),
    ]  # fmt: skip
    done = _run(args, timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total"]["failures"] == 0
    assert summary["shop_audit_breaches"] == []
    people = summary["people"]
    assert people["holds"] == people["confirms"] + people.get("abandons", 0) == 40
    assert people["tickets_bought"] == 3 * people["confirms"]


@pytest.mark.slow
@needs_locust
@pytest.mark.parametrize("scenario", ["steady_browsing", "sale_day"])
def test_browsing_and_sale_day_run_clean(tmp_path: Path, scenario: str) -> None:
    """A few seconds of each: every answer right, the stock invariant intact."""
    out = tmp_path / scenario
    args = [
        "-m", "loadtest.surge", "--scenario", scenario, "--users", "30", "--spawn-rate", "30",
        "--run-time", "6s", "--stop-timeout", "3", "--opens-in", "1", "--rate", "50",
        "--max-active", "20", "--poll-scale", "0.1", "--think-time", "0.1", "--out", str(out),
    ]  # fmt: skip
    done = _run(args, timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total"]["failures"] == 0
    assert summary["shop_audit_breaches"] == []
    names = {e["name"] for e in summary["endpoints"]}
    assert {"availability", "sale me", "draw", "my entry (none)"} <= names
    if scenario == "sale_day":
        assert {"join", "register", "hold", "hold (second tab)"} <= names
        assert summary["people"]["second_tab_replays_ok"] == summary["people"]["holds"]


@pytest.mark.slow
@needs_locust
def test_the_rehearsal_runs_end_to_end_small(tmp_path: Path) -> None:
    """The whole rehearsal with small numbers, Valkey killed and restarted midway: no breach."""
    args = ["-m", "loadtest.rehearsal", "--registrations", "600", "--winners", "200",
            "--shoppers", "60", "--shop-time", "20", "--seats-scale", "0.005",
            "--client-processes", "2", "--out", str(tmp_path / "reh")]  # fmt: skip
    done = _run(args, timeout=300)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    report = json.loads((tmp_path / "reh" / "report.json").read_text())
    assert report["breaches"] == []
    assert report["registration"]["registered"] == 600
    assert report["draw_verified"] is True
    assert report["windows"] == 200
    assert "redis_killed_at_s" in report
    assert report["purchases_confirmed_and_present"] > 0
    peaks = report["peak_rss_mib"]  # every process of the run, in MiB
    for name in ("guichet serve", "valkey", "valkey (restarted from its AOF)", "locust",
                 "registration client process 1", "registration client process 2",
                 "rehearsal (this process, its asyncio clients)"):  # fmt: skip
        assert peaks[name] > 1, name
    cpu = report["registration_cpu_s"]
    assert cpu["guichet serve"] > 0


@pytest.mark.slow
@needs_locust
def test_distributed_mode_merges_the_workers_tallies(tmp_path: Path) -> None:
    """A Locust master and 2 workers: every person is counted once, by one worker."""
    out = tmp_path / "dist"
    args = [
        "-m", "loadtest.surge", "--locust-workers", "2", "--users", "20", "--spawn-rate", "20",
        "--run-time", "8s", "--stop-timeout", "2", "--opens-in", "1", "--rate", "50",
        "--max-active", "10", "--poll-scale", "0.1", "--think-time", "0.1", "--out", str(out),
    ]  # fmt: skip
    done = _run(args, timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert len(list(out.glob("people-*.json"))) == 2  # one tally per worker
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total"]["failures"] == 0
    people = summary["people"]
    assert people["people_joined"] == people["people_left"] == 20
