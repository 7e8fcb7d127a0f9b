"""The ops commands of sales, draws and the outbox write their act's record (issue 15): actor
``cli:<os user>``, one record per act that succeeded, none for a refused one; key rotations
write theirs in the ``audit`` chain through the audit core's note script."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from guichet import cli, opscli
from guichet.app import SCRIPTS
from guichet.audit.act import cli_actor
from guichet.audit.record import GENESIS, Record, from_stream, record_hash
from guichet.config import Settings
from guichet.draw.service import Draws
from guichet.room.model import RoomPatch, RoomSpec
from guichet.room.service import Rooms
from guichet.store import sync
from guichet.store.client import Store
from guichet.store.keys import AUDIT_TAG, DrawKeys, audit_chain
from tests.conftest import settings_file
from tests.e2e.room_helpers import spec as room_spec


def records(settings: Settings, tag: str) -> list[Record]:
    client = sync.connect(settings.redis, sync.target(settings.redis))
    entries: Any = client.xrange(audit_chain(tag))
    found = [from_stream(tag, fields) for _, fields in entries]
    prev = GENESIS
    for seq, r in enumerate(found, start=1):  # the chain is valid
        assert (r.seq, r.prev, record_hash(r)) == (seq, prev, r.hash)
        prev = r.hash
    return found


def acts(settings: Settings, tag: str) -> list[tuple[str, str, str, str]]:
    return [(r.actor, r.action, r.object, r.outcome) for r in records(settings, tag)]


def test_sale_draw_and_outbox_commands_write_one_record_per_act(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = settings_file(settings, tmp_path / "ops.toml")

    def run(*argv: str) -> int:
        return cli.main(["--config", str(config), *argv])

    me = cli_actor()
    assert run("shop", "put", "s1", "--phase", "packs") == 0
    assert run("shop", "load", "s1", "--demo") == 0
    now = datetime.now(UTC)
    spec = tmp_path / "d1.json"
    spec.write_text(json.dumps({
        "registration_opens_at": (now - timedelta(hours=1)).isoformat(),
        "registration_closes_at": (now + timedelta(hours=1)).isoformat(),
        "strata": ["club", "general"], "restricted": ["club"], "sale": "s1",
    }))  # fmt: skip
    assert run("draw", "put", "d1", "--file", str(spec)) == 0
    listed = tmp_path / "club.txt"
    listed.write_text("acct-0\nacct-1\n")
    assert run("draw", "members", "load", "d1", "club", str(listed)) == 0
    assert run("draw", "members", "load", "d1", "general", str(listed)) == 1  # refused: open

    async def register(store: Store) -> None:
        draws = Draws(store)
        for i in range(20):
            assert (await draws.register("d1", f"acct-{i}", "general")).code == "created"

    opscli.with_store(settings, SCRIPTS, register)
    assert run("draw", "commit", "d1") == 0
    assert run("draw", "commit", "d1") == 0  # already committed: no new act
    assert run("draw", "put", "d1", "--file", str(spec)) == 1  # refused: committed
    client = sync.connect(settings.redis, sync.target(settings.redis))
    seconds, micros = client.time()
    client.hset(DrawKeys("d1").cfg, "closes_us", int(seconds) * 1_000_000 + int(micros))
    assert run("draw", "run", "d1", "--beacon", "0102", "--quiet", "--processes", "1") == 0
    assert run("draw", "run", "d1", "--beacon", "0102", "--quiet") == 0  # ran already
    start = (now + timedelta(days=3)).isoformat()
    assert run("draw", "release-wave", "d1", "--count", "5", "--start", start, "--quiet") == 0
    capsys.readouterr()
    assert run("outbox", "read", "s1", "--consumer", "m1", "--count", "2") == 0
    ids = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert run("outbox", "ack", "s1", *ids) == 0
    assert run("outbox", "trim", "s1") == 0

    assert acts(settings, "draw:d1") == [
        (me, "draw.put", "draw:d1", "created"),
        (me, "draw.members", "draw:d1", "loaded"),
        (me, "draw.commit", "draw:d1", "committed"),
        (me, "draw.run", "draw:d1", "started"),  # begin.lua; the run then ran at once
    ]
    assert acts(settings, "sale:s1") == [
        (me, "sale.put", "sale:s1", "created"),
        (me, "sale.catalogue", "sale:s1", "loaded"),
        (me, "draw.wave", "draw:d1", "released"),
        (me, "outbox.ack", "sale:s1", "acked"),
        (me, "outbox.trim", "sale:s1", "trimmed"),
    ]
    assert all("acct-" not in repr(r) for r in records(settings, "sale:s1"))


def test_acts_of_the_service_itself_have_the_actor_service(settings: Settings) -> None:
    """Rooms and draws from the config file, demo data: the service's own acts, recorded."""

    async def work(store: Store) -> None:
        rooms = Rooms(store, settings.rooms)
        try:
            assert await rooms.configure("r", "patch", RoomPatch(paused=True)) == "unknown"
            assert records(settings, "room:r") == []  # a refused act: no record
            spec = msgspec.convert(room_spec(), RoomSpec)
            assert await rooms.configure("r", "create", spec) == "created"
            assert await rooms.configure("r", "create", spec) == "exists"
        finally:
            await rooms.close()

    opscli.with_store(settings, SCRIPTS, work)
    assert acts(settings, "room:r") == [("service", "room.create", "room:r", "created")]


@pytest.mark.parametrize(
    ("argv", "action", "object"),
    [(("room", "rotate-key"), "room.rotate-key", "keys:admission"),
     (("ticket", "rotate-key"), "eticket.rotate-key", "keys:eticket")],
)  # fmt: skip
def test_a_key_rotation_writes_its_record_in_the_audit_chain(
    settings: Settings, tmp_path: Path, argv: tuple[str, str], action: str, object: str
) -> None:
    config = settings_file(settings, tmp_path / "ops.toml")
    assert cli.main(["--config", str(config), *argv]) == 0
    [r] = records(settings, AUDIT_TAG)
    assert (r.actor, r.action, r.object, r.outcome) == (cli_actor(), action, object, "rotated")
