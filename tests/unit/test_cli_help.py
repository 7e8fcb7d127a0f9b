"""Every example the CLI's ``--help`` and the README's walk-throughs print must be accepted."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from guichet import cli, wire
from guichet.clitime import rfc3339
from guichet.draw import model as draw_model
from guichet.room import cli as room_cli
from guichet.room import model as room_model

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE = re.compile(r"e\.g\. (\S+?)[),]?(?:\s|$)")


def parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, (*path, name))


ALL = list(parsers(cli.build_parser()))


def test_every_sub_command_has_a_help() -> None:
    assert len(ALL) > 30
    for path, parser in ALL:
        assert parser.format_help(), path


@pytest.mark.parametrize(
    ("path", "action"),
    [(path, a) for path, p in ALL for a in p._actions if a.help and "e.g." in a.help],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "/".join(v.option_strings),
)
def test_examples_in_help_are_accepted(path: tuple[str, ...], action: argparse.Action) -> None:
    assert action.help is not None
    examples = EXAMPLE.findall(action.help)
    assert examples, action.help
    for example in examples:
        value = example if action.type is None else action.type(example)  # type: ignore[operator]
        if re.match(r"\d{4}-\d{2}-\d{2}T", example):  # a time: the server parses what is sent
            msgspec.convert(value, datetime)


def test_every_time_option_accepts_rfc3339_without_seconds() -> None:
    times = [(path, a) for path, p in ALL for a in p._actions if a.help and "RFC 3339" in a.help]
    assert len(times) >= 6
    for path, action in times:
        assert action.type is rfc3339, (path, action.option_strings)


@pytest.mark.parametrize(
    "text",
    ["2026-12-01T08:00Z", "2026-12-01T08:00:00Z", "2026-12-01t08:00z", "2026-12-01 08:00+02:00",
     "2026-12-01T08:00:00.25-05:30"],
)  # fmt: skip
def test_rfc3339_forms(text: str) -> None:
    assert msgspec.convert(rfc3339(text), datetime).tzinfo is not None


@pytest.mark.parametrize(
    "text", ["2026-12-01", "2026-12-01T08:00", "20261201T0800Z", "2026-02-30T08:00Z", "soon", ""]
)
def test_rfc3339_refusals_are_usage_errors(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"2026-12-01T08:00Z|day is out"):
        rfc3339(text)


@given(st.text())
def test_rfc3339_accepts_or_refuses_cleanly(text: str) -> None:
    try:
        value = rfc3339(text)
    except argparse.ArgumentTypeError:
        return
    assert msgspec.convert(value, datetime).tzinfo is not None


def readme_commands() -> list[list[str]]:
    """Every ``guichet …`` command of the README's shell blocks, `$(date …)` evaluated."""
    text = README.read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        block = block.replace("\\\n", " ")
        for expr in set(re.findall(r"\$\(date [^)]*\)", block)):
            value = subprocess.run(
                ["bash", "-c", f"echo {expr}"], capture_output=True, text=True, check=True
            ).stdout.strip()
            block = block.replace(expr, value)
        close = re.search(r"^CLOSE=(\S+)$", block, flags=re.M)
        if close:
            block = block.replace("$CLOSE", close.group(1))
        block = block.replace("$COMMITMENT", "0" * 64)  # the hash the walk-through keeps
        for line in block.splitlines():
            for found in re.findall(r"(?:^|\$\(|; )(guichet [^)#|;&>]*)", line):  # no redirect
                commands.append(shlex.split(found)[1:])
    return commands


def test_readme_walkthrough_commands_parse_and_their_values_are_valid() -> None:
    commands = readme_commands()
    assert any(c[:2] == ["room", "put"] for c in commands)
    assert any(c[:2] == ["draw", "release-wave"] for c in commands)
    parser = cli.build_parser()
    for argv in commands:
        assert not any("$(" in arg or "$CLOSE" in arg for arg in argv), argv
        args = parser.parse_args(argv)  # exit 2 (SystemExit) on a refused value
        if argv[:2] == ["room", "put"]:
            spec = room_cli._spec(args)
            wire.decode(msgspec.json.encode(spec), room_model.RoomSpec)
        if argv[:2] == ["draw", "put"]:
            spec = {"registration_opens_at": args.opens, "registration_closes_at": args.closes,
                    "strata": args.strata.split(","), "sale": args.sale}  # fmt: skip
            wire.decode(msgspec.json.encode(spec), draw_model.DrawSpec)
