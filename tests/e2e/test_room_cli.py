"""``guichet room …`` against a real server, and rooms defined in the config file."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tomli_w
from aiohttp.test_utils import TestClient, TestServer

from guichet import cli
from guichet.app import create_app
from guichet.config import Settings
from tests.conftest import Backend, Client, Tokens, make_settings, settings_file


def write_config(tmp_path: Path, settings: Settings, **rooms: object) -> Path:
    """A TOML file with the test's key files, so the CLI mints tokens the server trusts."""
    path = tmp_path / "cli.toml"
    data = {
        "security": {"dev_issuer_key_file": settings.security.dev_issuer_key_file},
        "rooms": {"signing_key_dir": settings.rooms.signing_key_dir, **rooms},
    }
    path.write_text(tomli_w.dumps(data))
    return path


async def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(cli.main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def test_room_put_set_pause_show_list(
    client: Client, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(await asyncio.to_thread(write_config, tmp_path, settings))
    url = str(client.make_url("/"))
    now = datetime.now(UTC)
    base = ("--config", config)
    code, out, err = await run_cli(
        capsys, *base, "room", "put", "final", "--url", url,
        "--opens-at", now.isoformat(), "--closes-at", (now + timedelta(hours=1)).isoformat(),
        "--rate", "3.5", "--max-active", "50", "--audience", "shop",
        "--target-url", "https://shop.example/", "--paused", "--name", "Finale <100 m>",
        "--unlisted",
    )  # fmt: skip
    assert code == 0, err
    spec = json.loads(out)["spec"]
    assert (spec["rate_per_s"], spec["name"], spec["listed"]) == (3.5, "Finale <100 m>", False)
    code, out, err = await run_cli(
        capsys, *base, "room", "set", "final", "--url", url, "--rate", "9", "--running"
    )
    assert code == 0, err
    body = json.loads(out)
    assert body["spec"]["rate_per_s"] == 9
    assert body["spec"]["paused"] is False
    code, out, _ = await run_cli(capsys, *base, "room", "pause", "final", "--url", url)
    assert code == 0
    assert json.loads(out)["spec"]["paused"] is True
    code, out, _ = await run_cli(capsys, *base, "room", "list", "--url", url)
    assert [r["id"] for r in json.loads(out)["rooms"]] == ["final"]
    # A refused change exits non-zero and prints the problem, naming the field.
    code, out, err = await run_cli(
        capsys, *base, "room", "set", "final", "--url", url, "--rate", "-1"
    )
    assert code == 1
    assert "rate_per_s" in err
    code, _, err = await run_cli(capsys, *base, "room", "show", "nope", "--url", url)
    assert code == 1
    assert "not-found" in err


async def test_rotate_key_publishes_a_second_key(
    client: Client, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the whole settings: a rotation is recorded in the audit log (Redis)
    config = str(await asyncio.to_thread(settings_file, settings, tmp_path / "cli.toml"))
    resp = await client.get("/.well-known/jwks.json")
    before = {k["kid"] for k in (await resp.json())["keys"]}
    code, _, err = await run_cli(capsys, "--config", config, "room", "rotate-key")
    assert code == 0, err
    async with asyncio.timeout(10):  # workers rescan the key directory every ~2 s
        while True:
            resp = await client.get("/.well-known/jwks.json")
            kids = {k["kid"] for k in (await resp.json())["keys"]}
            if kids - before:  # (the JWKS also lists the e-ticket keys: count the new one)
                break
            await asyncio.sleep(0.1)
    assert before < kids
    assert len(kids - before) == 1


@pytest.fixture
def defined_app_settings(tmp_path: Path, backend: Backend) -> Settings:
    now = datetime.now(UTC)
    room = {
        "id": "from-config",
        "opens_at": now.isoformat(),
        "closes_at": (now + timedelta(hours=1)).isoformat(),
        "rate_per_s": 2,
        "max_active": 10,
        "audience": "shop",
        "target_url": "https://shop.example/",
    }
    return make_settings(tmp_path, backend.redis_section, rooms={"define": [room]})


async def test_rooms_from_the_config_file_are_created_once(
    defined_app_settings: Settings, backend: Backend
) -> None:
    from guichet.state import SETTINGS

    app = await asyncio.to_thread(create_app, defined_app_settings)
    assert app[SETTINGS].rooms.define[0].id == "from-config"
    tokens = await asyncio.to_thread(Tokens, defined_app_settings)
    admin = {"Authorization": f"Bearer {tokens.admin('rooms:read', 'rooms:write')}"}
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        resp = await c.get("/v1/admin/rooms/from-config", headers=admin)
        assert resp.status == 200
        assert (await resp.json())["spec"]["rate_per_s"] == 2
        # A live change survives a restart: the config only creates what is missing.
        resp = await c.patch("/v1/admin/rooms/from-config", json={"rate_per_s": 7}, headers=admin)
        assert resp.status == 200
    app = await asyncio.to_thread(create_app, defined_app_settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        resp = await c.get("/v1/admin/rooms/from-config", headers=admin)
        assert (await resp.json())["spec"]["rate_per_s"] == 7


def exits(argv: list[str]) -> object:
    """The exit code of an argparse exit (``--help``, a usage error)."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    return info.value.code


async def test_room_put_takes_the_time_its_help_shows(
    client: Client, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`room put --help` shows 2026-12-01T08:00Z (no seconds): the server gets it as a time."""
    assert await asyncio.to_thread(exits, ["room", "put", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    example = re.search(r"--opens-at OPENS_AT .*?e\.g\. (\S+)", shown)
    assert example is not None, shown
    config = str(await asyncio.to_thread(write_config, tmp_path, settings))
    code, out, err = await run_cli(
        capsys, "--config", config, "room", "put", "help-example", "--url",
        str(client.make_url("/")), "--opens-at", example.group(1),
        "--closes-at", "2030-01-01T00:00Z", "--rate", "2", "--max-active", "10",
        "--audience", "shop", "--target-url", "https://shop.example/",
    )  # fmt: skip
    assert code == 0, err
    spec = json.loads(out)["spec"]
    assert datetime.fromisoformat(spec["opens_at"]) == datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert datetime.fromisoformat(spec["closes_at"]) == datetime(2030, 1, 1, tzinfo=UTC)
    # A date alone: a usage error naming the flag.
    assert await asyncio.to_thread(exits, ["room", "put", "x", "--opens-at", "2026-12-01"]) == 2
    assert "--opens-at" in capsys.readouterr().err
