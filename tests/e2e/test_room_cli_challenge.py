"""``guichet room put/set --challenge-bits``: the proof-of-work door from the CLI."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from guichet.config import Settings
from tests.conftest import Client
from tests.e2e.test_room_cli import run_cli, write_config


async def test_room_put_and_set_challenge_bits(
    client: Client, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(await asyncio.to_thread(write_config, tmp_path, settings))
    url = str(client.make_url("/"))
    now = datetime.now(UTC)
    base = ("--config", config)
    code, out, err = await run_cli(
        capsys, *base, "room", "put", "door", "--url", url,
        "--opens-at", now.isoformat(), "--closes-at", (now + timedelta(hours=1)).isoformat(),
        "--rate", "3", "--max-active", "5", "--audience", "shop",
        "--target-url", "https://shop.example/", "--challenge-bits", "12",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["spec"]["challenge_bits"] == 12
    code, out, err = await run_cli(
        capsys, *base, "room", "set", "door", "--url", url, "--challenge-bits", "0"
    )
    assert code == 0, err
    assert json.loads(out)["spec"]["challenge_bits"] == 0
    code, _, err = await run_cli(
        capsys, *base, "room", "set", "door", "--url", url, "--challenge-bits", "31"
    )
    assert code == 1
    assert "challenge_bits" in err
