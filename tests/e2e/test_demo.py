"""``guichet demo`` sets the whole flow up: a demo account can shop at once, through the
sale's waiting room; Ctrl-C (SIGTERM) stops it and its server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from guichet.programme import model
from tests.e2e.processes import ROOT


def _call(
    url: str, token: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")  # noqa: S310
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
        return response.status, json.loads(response.read())


def _through_the_room(base: str, token: str) -> str:
    """The demo room guards its sale: join, wait to be called, admit; the admission token."""
    _, joined = _call(f"{base}/join", token, {})
    ticket = {"X-Queue-Ticket": str(joined["ticket"])}
    deadline = time.monotonic() + 30
    while _call(f"{base}/status", token, headers=ticket)[1]["state"] != "ready":
        assert time.monotonic() < deadline, "not called within 30 s"
        time.sleep(0.2)
    _, admitted = _call(f"{base}/admit", token, {}, ticket)
    return str(admitted["token"])


def _get(url: str, token: str) -> Any:
    request = urllib.request.Request(url)  # noqa: S310 (loopback)
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def _the_state_programme_is_there(base: str, programme: dict[str, Any]) -> None:
    """The whole pool (401,220), a clean audit of both games, the eight programmes with the
    published split allocated, each with its lottery run and tickets given."""
    assert programme["pool"] == model.TOTAL_TICKETS
    central = programme["central_token"]
    loaded = 0
    for games in model.GAMES:
        audit = _get(f"{base}/v1/admin/programme/audit?games={games}", central)
        assert audit["breaches"] == []
        assert audit["pool"] == 0  # every ticket allocated
        assert audit["allocated"] + audit["assigned"] == audit["loaded"]
        loaded += audit["loaded"]
    assert loaded == model.TOTAL_TICKETS
    per_public: dict[str, int] = {}
    assert len(programme["programmes"]) == 8
    for p, facts in programme["programmes"].items():
        view = _get(f"{base}/v1/admin/programmes/{p}", central)
        assert (view["public"], view["games"]) == (facts["public"], facts["games"])
        per_public[view["public"]] = per_public.get(view["public"], 0) + view["stats"]["allocated"]
        assert view["stats"]["candidates"] == facts["lottery"]["candidates"] > 0
        assert view["stats"]["assigned"] == facts["lottery"]["assigned"] > 0
        assert view["reclaim_on"] > datetime.now(UTC).date().isoformat()  # not due in the demo
    assert per_public == model.PUBLISHED_SPLIT
    operator = programme["operator_tokens"]["op-youth"]  # bound to its programmes
    assert (
        _get(f"{base}/v1/admin/programmes/youth-olympic/lotteries/demo", operator)["state"] == "run"
    )


def test_the_demo_lets_a_winner_hold_a_pack_and_stops_cleanly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    env["PYTHONPATH"] = str(ROOT)
    argv = [sys.executable, "-m", "guichet", "demo", "--workdir", str(tmp_path / "demo"),
            "--port", "0", "--accounts", "200", "--close-in", "1"]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # the summary is printed once everything is ready
            lines.append(line)
            if line.rstrip() == "}":
                break
        summary = json.loads("".join(lines))
        assert (summary["sessions"], summary["entries"], summary["windows"]) == (542, 200, 100)
        assert (summary["paralympic_sale"], summary["paralympic_sessions"]) == (
            "paris-2024-paralympic",
            225,
        )  # the seed: a separate Paralympic sale
        winner = summary["demo_accounts"][0]
        body = {"packs": [{"items": [
            {"session": s, "category": "D", "quantity": 1} for s in ("ATH-01", "SWM-01", "JUD-01")
        ]}]}  # fmt: skip
        admission = _through_the_room(f"{summary['url']}/v1/rooms/{summary['room']}",
                                      winner["token"])  # fmt: skip
        status, held = _call(f"{summary['url']}/v1/sales/paris-2024/holds", winner["token"],
                             body, {"Idempotency-Key": "demo-1",
                                    "X-Admission-Token": admission})  # fmt: skip
        assert status == 201
        assert held["tickets"] == 3
        assert (tmp_path / "demo" / "data" / "guichet-valkey.json").exists()  # Valkey is up
        _the_state_programme_is_there(summary["url"], summary["programme"])
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0
    assert not (tmp_path / "demo" / "data" / "guichet-valkey.json").exists()  # all stopped
