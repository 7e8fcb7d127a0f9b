"""The audit log on a real Valkey: the Lua fragment and record.py agree, chains are
contiguous under concurrency, anchors are signed once per round, and a removed record fails
verify (standalone, or a Cluster with GUICHET_TEST_REDIS=cluster)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from guichet import metrics
from guichet.audit import anchors, chains, notes
from guichet.audit.act import Act
from guichet.audit.record import GENESIS, record_hash
from guichet.audit.verify import Report, verify
from guichet.config import Settings
from guichet.signing import Keyring
from guichet.store import sync
from guichet.store.client import Store
from guichet.store.keys import AUDIT_ANCHORS, AUDIT_TAG, audit_chain


def act(actor: str = "admin:test", obj: str = "room:r1", action: str = "room.put") -> Act:
    return Act(actor=actor, action=action, object=obj, digest="ab" * 32)


@pytest.fixture
def ring(tmp_path: Path) -> Keyring:
    return anchors.keyring_at(tmp_path / "audit-keys")


async def export_of(store: Store, ring: Keyring) -> Report:
    jwks = {"keys": ring.published()}
    lines = [line async for line in chains.export_lines(store.client, jwks)]
    return verify(lines)


async def test_lua_and_python_agree_on_awkward_text(store: Store) -> None:
    odd = "Zoë, l'opérateur: a,b:c\nnewline 🎫 {tag}"
    assert await notes.note(store.scripts, act(actor=odd, obj=odd), "room:r1", outcome="put") == 1
    assert await notes.note(store.scripts, act(), "room:r1", outcome="patched") == 2
    records = [r async for _, r in chains.entries(store.client, "room:r1")]
    assert [r.seq for r in records] == [1, 2]
    first, second = records
    assert (first.actor, first.object, first.outcome, first.chain) == (odd, odd, "put", "room:r1")
    assert first.prev == GENESIS
    assert second.prev == first.hash
    assert all(record_hash(r) == r.hash for r in records)
    assert first.at <= second.at
    assert first.at > 1_700_000_000_000_000


async def test_fifty_concurrent_notes_make_one_contiguous_chain(
    store: Store, ring: Keyring
) -> None:
    seqs = await asyncio.gather(
        *(
            notes.note(store.scripts, act(obj=f"o{i}"), AUDIT_TAG, outcome="noted")
            for i in range(50)
        )
    )
    assert sorted(seqs) == list(range(1, 51))
    records = [r async for _, r in chains.entries(store.client, AUDIT_TAG)]
    assert [r.seq for r in records] == list(range(1, 51))
    report = await export_of(store, ring)
    assert report.ok, report.problem
    assert (report.chains, report.records) == (1, 50)


async def test_two_concurrent_signers_append_one_anchor(store: Store, ring: Keyring) -> None:
    await notes.note(store.scripts, act(), "room:r1", outcome="put")
    await notes.note(store.scripts, act(obj="draw:d"), "draw:d", outcome="put")
    results = await asyncio.gather(anchors.sign_once(store, ring), anchors.sign_once(store, ring))
    assert sorted(results) == ["appended", "stale"]
    assert await store.client.xlen(AUDIT_ANCHORS) == 1
    assert await anchors.sign_once(store, ring) == "unchanged"  # no chain moved
    await notes.note(store.scripts, act(), "room:r1", outcome="patched")
    assert await anchors.sign_once(store, ring) == "appended"
    report = await export_of(store, ring)
    assert report.ok, report.problem
    assert (report.anchors, report.records, report.unanchored) == (2, 3, {})
    last = await chains.latest_anchor(store.client)
    assert last is not None
    claims = anchors.claims_of(last.jws)
    assert claims.seq == 2
    assert claims.heads["room:r1"].seq == 2
    assert claims.heads["draw:d"].seq == 1


async def test_a_record_removed_after_an_anchor_fails_verify(store: Store, ring: Keyring) -> None:
    for outcome in ("put", "patched", "paused"):
        await notes.note(store.scripts, act(), "room:r1", outcome=outcome)
    assert await anchors.sign_once(store, ring) == "appended"
    await notes.note(store.scripts, act(), "room:r1", outcome="resumed")
    assert (await export_of(store, ring)).unanchored == {"room:r1": 1}
    ids = [i async for i, _ in chains.entries(store.client, "room:r1")]
    await store.client.xdel(audit_chain("room:r1"), ids[1])
    report = await export_of(store, ring)
    assert not report.ok
    assert report.problem is not None
    assert (report.problem.chain, report.problem.seq) == ("room:r1", 3)
    with pytest.raises(anchors.ChainBroken):  # nor is anything signed over it
        await anchors.sign_once(store, ring)
    await anchors.round_(store, ring)  # the background round logs it; the age gauge grows
    age = REGISTRY.get_sample_value("guichet_audit_anchor_age_seconds")
    assert age is not None
    assert age > 0
    assert await store.client.xlen(AUDIT_ANCHORS) == 1


async def test_the_tail_cut_after_an_anchor_fails_verify(store: Store, ring: Keyring) -> None:
    for outcome in ("put", "patched"):
        await notes.note(store.scripts, act(), "room:r1", outcome=outcome)
    await anchors.sign_once(store, ring)
    ids = [i async for i, _ in chains.entries(store.client, "room:r1")]
    await store.client.xdel(audit_chain("room:r1"), ids[-1])  # the chain still links up
    report = await export_of(store, ring)
    assert not report.ok
    assert report.problem is not None
    assert "anchored at 2" in report.problem.what
    await store.client.delete(audit_chain("room:r1"))  # the whole chain
    report = await export_of(store, ring)
    assert report.problem is not None
    assert report.problem.what == "an anchored chain is missing"


async def test_the_sync_note_of_a_command_line_chains_on(
    store: Store, settings: Settings, ring: Keyring
) -> None:
    await notes.note(store.scripts, act(), AUDIT_TAG, outcome="issued")

    def from_cli() -> int:
        client = sync.connect(settings.redis, sync.target(settings.redis))
        try:
            return notes.note_sync(client, act(actor="cli:ops"), outcome="rotated")
        finally:
            client.close()

    assert await asyncio.to_thread(from_cli) == 2
    records = [r async for _, r in chains.entries(store.client, AUDIT_TAG)]
    assert records[1].actor == "cli:ops"
    assert records[1].prev == records[0].hash
    # the records gauge is read from Redis at the anchor round: every worker says the same
    await anchors.sign_once(store, ring)
    assert REGISTRY.get_sample_value("guichet_audit_records", {"family": "audit"}) == 2
    assert REGISTRY.get_sample_value("guichet_audit_records", {"family": "room"}) == 0


async def test_the_signer_refuses_a_record_that_does_not_match_its_hash(
    store: Store, ring: Keyring
) -> None:
    await notes.note(store.scripts, act(), AUDIT_TAG, outcome="issued")
    key = audit_chain(AUDIT_TAG)
    entries: Any = await store.client.xrange(key)
    ((entry_id, fields),) = entries
    await store.client.delete(key)  # rewritten whole, same links, another actor
    fields[b"actor"] = b"someone-else"
    await store.client.xadd(key, fields, id=entry_id)
    with pytest.raises(anchors.ChainBroken, match="does not match its hash"):
        await anchors.sign_once(store, ring)


def test_record_families_are_bounded() -> None:
    assert [metrics.audit_family(t) for t in ("room:a", "taj:olympic", "audit", "x:y", "")] == [
        "room", "taj", "audit", "other", "other"]  # fmt: skip


def appending_once(
    monkeypatch: pytest.MonkeyPatch, during: Callable[[], Awaitable[object]]
) -> list[bool]:
    """Make ``chains.entries`` run ``during`` once, after yielding its first entry: an act
    committed while a round or an export reads the chains (deterministic, real Valkey)."""
    real, done = chains.entries, [False]

    async def entries(client: Any, tag: str, after_id: str = "") -> AsyncIterator[Any]:
        async for item in real(client, tag, after_id):
            yield item
            if not done[0]:
                done[0] = True
                await during()

    monkeypatch.setattr(chains, "entries", entries)
    return done


async def test_an_act_appended_during_a_round_waits_for_the_next(
    store: Store, ring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    for outcome in ("put", "patched"):
        await notes.note(store.scripts, act(), "room:r1", outcome=outcome)
    done = appending_once(
        monkeypatch, lambda: notes.note(store.scripts, act(), "room:r1", outcome="paused")
    )
    assert await anchors.sign_once(store, ring) == "appended"  # not ChainBroken
    assert done[0]
    last = await chains.latest_anchor(store.client)
    assert last is not None
    assert anchors.claims_of(last.jws).heads["room:r1"].seq == 2
    assert await anchors.sign_once(store, ring) == "appended"
    report = await export_of(store, ring)
    assert report.ok, report.problem
    assert (report.anchors, report.unanchored) == (2, {})


async def test_rounds_under_many_concurrent_acts_never_break(store: Store, ring: Keyring) -> None:
    async def acts(tag: str) -> None:
        for i in range(60):
            await notes.note(store.scripts, act(obj=f"o{i}"), tag, outcome="noted")

    async def rounds() -> list[anchors.Result]:
        return [await anchors.sign_once(store, ring) for _ in range(15)]

    signers = [asyncio.create_task(rounds()) for _ in range(2)]
    await asyncio.gather(*(acts(f"room:r{i}") for i in range(4)))
    a, b = [await task for task in signers]
    assert "appended" in a + b  # and no ChainBroken was raised
    await anchors.sign_once(store, ring)
    report = await export_of(store, ring)
    assert report.ok, report.problem
    assert (report.records, report.unanchored) == (240, {})


async def test_deleting_then_appending_is_still_caught(store: Store, ring: Keyring) -> None:
    for outcome in ("put", "patched"):
        await notes.note(store.scripts, act(), "room:r1", outcome=outcome)
    await anchors.sign_once(store, ring)
    ids = [i async for i, _ in chains.entries(store.client, "room:r1")]
    await store.client.xdel(audit_chain("room:r1"), ids[0])  # the length is back to 1 ...
    await notes.note(store.scripts, act(), "room:r1", outcome="paused")  # ... and to 2
    with pytest.raises(anchors.ChainBroken, match="2 records of 3 added"):
        await anchors.sign_once(store, ring)


async def test_an_anchor_signed_during_an_export_is_not_in_it(
    store: Store, ring: Keyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    for outcome in ("put", "patched"):
        await notes.note(store.scripts, act(), "room:r1", outcome=outcome)
    await anchors.sign_once(store, ring)

    async def act_and_anchor() -> None:  # after the export read room:r1's first record
        await notes.note(store.scripts, act(), "draw:d", outcome="put")  # a chain read later
        await notes.note(store.scripts, act(), "room:r1", outcome="paused")  # read already
        assert await anchors.sign_once(store, ring) == "appended"

    appending_once(monkeypatch, act_and_anchor)
    jwks = {"keys": ring.published()}
    lines = [line async for line in chains.export_lines(store.client, jwks)]
    report = verify(lines)
    assert report.ok, report.problem
    assert report.anchors == 1  # the second, naming room:r1 at 3, was signed after the start
    assert await store.client.xlen(AUDIT_ANCHORS) == 2
