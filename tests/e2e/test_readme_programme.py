"""The README's State programme walk-through, run by bash as written, against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.processes import ROOT, run_as_reader

pytestmark = pytest.mark.slow

INTRO = 'The State programme "Tous aux Jeux", end to end'


def programme_block(readme: str) -> str:
    """The first ```sh block of the programme's walk-through section."""
    section = readme[readme.index(INTRO) :]
    start = section.index("```sh\n") + len("```sh\n")
    return section[start : section.index("```", start)]


def test_readme_programme_walkthrough_from_pool_to_reclaim(tmp_path: Path) -> None:
    run = run_as_reader(programme_block((ROOT / "README.md").read_text()), tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()  # curl's answers are one line each
    answers = [json.loads(x) for x in lines if x.startswith("{") and x.endswith("}")]
    created, committed, *rest = answers
    candidates, (ran, assigned, ticket, scanned, again, withdrawn) = rest[:3], rest[3:]
    assert created["id"] == "l1", created
    assert len(committed["commitment"]) == 64, committed
    assert all(len(c["pseudonym"]) == 64 and "Léa" not in json.dumps(c) for c in candidates)
    assert (ran["draw"], ran["entries"]) == ("programme:youth-75:l1", 3), ran  # the transcript
    assert assigned["assigned"] == 2, assigned
    assert ticket["state"] == "committed", ticket
    assert ticket["name"] in {"Léa Martin", "Hugo Bernard", "Chloé Petit"}, ticket
    assert (scanned["programme"], scanned["gate"]) == ("youth-75", "SDF-N3"), scanned
    assert "sale" not in scanned
    assert (again["status"], again["type"].rsplit("/", 1)[-1]) == (409, "already-used"), again
    assert withdrawn["outcome"] == "reassigned", withdrawn
    assert "OK: draw programme:youth-75:l1 verifies (3 entries)" in lines, run.stdout
    assert "olympic: 1 items: loaded 10 = pool 8 + allocated 0 + assigned 1 + used 1" in lines
