"""The Redis client comparison (``loadtest/redis_clients.py``, docs/benchmarks.md) still runs:
every client, both workloads, tiny counts, against its own private Valkey. asyncio-redis is
only in the ``loadtest`` extra: without it its arm is skipped (a failure under CI=true, where
the extra is installed), and the facts docs/architecture.md cites about it are checked here."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from loadtest import redis_clients

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--ops", "30", "--concurrency", "1", "4", "--rounds", "1"]


def _run(code: list[str], out: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, *code, *TINY, "--json", str(out)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    return done, json.loads(out.read_text())


def _cells(result: dict[str, Any]) -> set[tuple[str, str, int]]:
    return {(c["client"], c["workload"], c["concurrency"]) for c in result["medians"]}


@pytest.mark.slow
def test_every_client_measured(tmp_path: Path) -> None:
    installed = importlib.util.find_spec("asyncio_redis") is not None
    if not installed and os.environ.get("CI") == "true":
        pytest.fail("asyncio-redis is missing in CI: pip install -e '.[loadtest]' (.ci/run does)")
    done, result = _run(["-m", "loadtest.redis_clients"], tmp_path / "out.json")
    clients = [c for c in redis_clients.CLIENTS if installed or c != "asyncio-redis"]
    assert _cells(result) == {
        (c, w, n) for c in clients for w in redis_clients.WORKLOADS for n in (1, 4)
    }
    for cell in result["medians"]:
        assert cell["ops_s"] > 0
        assert 0 < cell["p50_ms"] <= cell["p99_ms"]
        if cell["client"] == "redis-py":
            assert cell["ratio"] == 1.0
    assert "vs redis-py" not in done.stdout  # the plain table, not the Markdown one
    assert result["facts"]["hiredis"] is True  # redis-py's parser is hiredis'
    if not installed:
        assert result["skipped"] == ["asyncio-redis"]
        pytest.skip("asyncio-redis not installed (pip install -e '.[loadtest]'): its arm skipped")
    facts = result["facts"]["asyncio_redis"]
    # docs/architecture.md: NOSCRIPT and a script's own error both reach the caller as a bare
    # ScriptKilledError, so a client cannot tell "load the script again" from a bug.
    assert facts["noscript"] == "ScriptKilledError('')"
    assert facts["script_error"] == "ScriptKilledError('')"
    # and return_value() of a list of strings hands back the list's reply object instead
    assert facts["list_reply_return_value"] == "MultiBulkReply"


@pytest.mark.slow
def test_asyncio_redis_absent_is_skipped_cleanly(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['asyncio_redis'] = None\n"  # import asyncio_redis fails
        "from loadtest.redis_clients import main; raise SystemExit(main(sys.argv[1:]))"
    )
    done, result = _run(
        ["-c", code, "--clients", "redis-py", "asyncio-redis", "--workloads", "get"],
        tmp_path / "out.json",
    )
    assert redis_clients.MISSING in done.stderr
    assert result["skipped"] == ["asyncio-redis"]
    assert _cells(result) == {("redis-py", "get", 1), ("redis-py", "get", 4)}
    assert "asyncio_redis" not in result["facts"]


@pytest.mark.parametrize(
    "args",
    [["--ops", "0"], ["--rounds", "0"], ["--concurrency", "0"], ["--clients", "plane"]],
)
def test_bad_arguments_refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        redis_clients.parse_args(args)
    assert exit_.value.code == 2
    assert "must" in capsys.readouterr().err
