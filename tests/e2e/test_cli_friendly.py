"""What an operator sees of the CLI: ``--help`` of every sub-command (each option explained,
no developer docstrings, no test-only flags), environment-variable errors naming the variable
and, for a choice, the allowed values, and ``guichet token --ttl`` bounds (exit 2)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_cli_help import ALL

MARKERS = (":param", "``", "Args:", ">>>", ":class:", ":func:", "Returns:")
TEST_ONLY = ("(tests)", "test-only", "for tests", "--setup-only", "--chunk")


def guichet(
    *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    return subprocess.run(
        [sys.executable, "-m", "guichet", *argv], capture_output=True, text=True,
        env=environ | (env or {}), cwd=cwd, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(("path", "parser"), ALL, ids=[" ".join(p) or "guichet" for p, _ in ALL])
def test_help_explains_every_option_without_developer_text(
    path: tuple[str, ...], parser: argparse.ArgumentParser
) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, (path, choice.dest)
        elif action.help != argparse.SUPPRESS:
            assert action.help, (path, action.option_strings or action.dest)
    text = parser.format_help()  # what `guichet … --help` prints
    for marker in (*MARKERS, *TEST_ONLY):
        assert marker not in text, (path, marker)


def test_help_as_a_user_runs_it() -> None:
    top = guichet("--help")
    assert top.returncode == 0
    assert "GUICHET_<SECTION>_<KEY>" in top.stdout
    assert not any(m in top.stdout for m in MARKERS)
    demo = guichet("demo", "--help")
    assert demo.returncode == 0
    assert "--setup-only" not in demo.stdout
    assert "listen port" in demo.stdout


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("GUICHET_SERVER_PORT", "abc", "GUICHET_SERVER_PORT (server.port): expected an integer, "
         "got 'abc'"),
        ("GUICHET_SERVER_PORT", "70000", "GUICHET_SERVER_PORT (server.port): expected an integer "
         "<= 65535, got '70000'"),
        ("GUICHET_SERVER_FAST_STATUS", "maybe", "expected true or false, got 'maybe'"),
        ("GUICHET_LOGGING_LEVEL", "LOUD", "GUICHET_LOGGING_LEVEL (logging.level): expected one of "
         "DEBUG, INFO, WARNING, ERROR, got 'LOUD'"),
        ("GUICHET_REDIS_DATA_PLANE", "fast", "expected one of multiplex, pool, got 'fast'"),
        ("GUICHET_SECURITY_ALGORITHMS", "EdDSA,HS512", "expected one of EdDSA, ES256, RS256, "
         "PS256, got 'EdDSA,HS512'"),
        ("GUICHET_SERVER_NOPE", "1", "GUICHET_SERVER_NOPE: unknown key server.nope"),
    ],
)  # fmt: skip
def test_environment_errors_name_the_variable(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    run = guichet("config", "show", env={variable: value}, cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert expected in run.stderr
    assert "Traceback" not in run.stderr


def test_toml_choice_errors_list_the_allowed_values(tmp_path: Path) -> None:
    config = tmp_path / "guichet.toml"
    config.write_text('[logging]\nlevel = "LOUD"\n')
    run = guichet("--config", str(config), "config", "show", cwd=tmp_path)
    assert run.returncode == 2
    assert "logging.level: Invalid enum value 'LOUD'; allowed: DEBUG, INFO, WARNING, ERROR" in (
        run.stderr
    )


@pytest.mark.parametrize(
    ("ttl", "expected"),
    [
        ("-1", "argument --ttl: must be at least 1 second, got -1"),
        ("0", "argument --ttl: must be at least 1 second, got 0"),
        ("1h", "argument --ttl: expected a whole number of seconds, got '1h'"),
        ("86401", "--ttl 86401 is above security.max_token_ttl_s (86400)"),
    ],
)
def test_token_ttl_out_of_bounds_is_refused(tmp_path: Path, ttl: str, expected: str) -> None:
    run = guichet("token", "--account", "a1", "--ttl", ttl, cwd=tmp_path)
    assert run.returncode == 2
    assert expected in run.stderr
    assert run.stdout == ""
    assert not (tmp_path / ".guichet").exists()  # refused before the dev key is made


def test_token_ttl_at_the_bound_is_minted(tmp_path: Path) -> None:
    run = guichet("token", "--account", "a1", "--ttl", "86400", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count(".") == 2
