"""The README's waiting-room walk-through, run by bash as written, against a real server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.e2e.processes import ROOT, run_as_reader

pytestmark = pytest.mark.slow


def block_after(text: str, heading: str) -> str:
    """The first ```sh block after the line ``heading``."""
    found = re.search(re.escape(heading) + r"\n\n```sh\n(.*?)```", text, flags=re.S)
    assert found is not None, heading
    return found.group(1)


def test_readme_walkthrough_runs_from_room_to_gate(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    token_line = next(
        line for line in block_after(readme, "Try it:").splitlines() if line.startswith("TOKEN=")
    )
    flow = block_after(
        readme, "the draw, a purchase window, a hold, its confirmation, the e-tickets and a gate:"
    )
    # A pacer ticking once a second, as a busy one may: admission must wait for the call.
    run = run_as_reader(token_line + "\n" + flow, tmp_path,
                        serve_env={"GUICHET_ROOMS_TICK_INTERVAL_S": "1"})  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()  # curl's answers are one line each; the CLI's are indented
    answers = [json.loads(x) for x in lines if x.startswith("{") and x.endswith("}")]
    admitted, entry, me, confirmed, tickets, scanned, again = answers
    assert admitted["room"] == "final", admitted  # an admission, not a 409 problem
    assert admitted["redirect_url"].startswith("https://shop.example/")
    assert entry["draw"] == "lottery", entry  # registered with the admission token
    assert me["status"] == "window_assigned", me
    assert confirmed["state"] == "confirmed", confirmed
    assert len(tickets["tickets"]) == 3
    assert {t["session"] for t in tickets["tickets"]} == {"ATH-01", "ATH-02", "ATH-03"}
    assert scanned["gate"] == "SDF-N3", scanned
    assert (again["status"], again["type"].rsplit("/", 1)[-1]) == (409, "already-used"), again
    assert "OK: draw lottery verifies (1 entries)" in lines, run.stdout
    assert "<svg" in (tmp_path / "ticket.svg").read_text()
