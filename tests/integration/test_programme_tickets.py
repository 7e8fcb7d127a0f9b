"""Designation and tickets of the State programme on a real Valkey (slice C of issue 14):
lottery transcript verified by the draw engine, concurrent assignment of the last tickets, no
double benefit, guardian consent, withdrawal and reassignment, the gate's scan; the pool
invariant checked after each."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from guichet.config import Settings
from guichet.draw import audit, seal
from guichet.draw import model as draw_model
from guichet.programme import designate, identity, lottery, tickets
from guichet.programme.acting import Acting, internal, run
from guichet.programme.tickets_refusals import Refuse
from guichet.signing import Keyring
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys, audit_chain
from tests import programme_seed_c as seed
from tests.conftest import Backend, make_settings

P, Q = "youth-75", "agents-13"
FUTURE = date.today() + timedelta(days=30)


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(tmp_path, backend.redis_section, programme={
        "name_key_file": str(tmp_path / "name-key"),
        "pseudonym_secret_file": str(tmp_path / "pseudonym-secret")})  # fmt: skip


@dataclass(frozen=True)
class Kit:
    """Keys read outside the event loop (start-up does the same)."""

    seal_key: bytes
    draw_signer: Keyring
    box: identity.NameBox
    etickets: Keyring
    settings: Settings

    def tickets(self, store: Store) -> tickets.Tickets:
        return tickets.Tickets(store, self.etickets, self.settings.etickets, self.box)


@pytest.fixture
def kit(settings: Settings) -> Kit:
    return Kit(seal.seal_key(settings.draws), Keyring(settings.draws.signing_key_dir),
               identity.name_box(settings.programme), Keyring(settings.etickets.signing_key_dir),
               settings)  # fmt: skip


def person(n: int) -> str:
    return f"{n:064x}"


def act(actor: str = "op-1") -> Acting:
    """An act through the service layer, recorded as ``actor``'s (no declaration: not HTTP)."""
    return internal(actor, "programme.test", "programme:test")


async def ran_lottery(
    store: Store, kit: Kit, lot: str = "l1", people: int = 30, alloc: int = 10,
    day: date = FUTURE, pid: str = P,
) -> list[str]:  # fmt: skip
    """A programme with ``alloc`` tickets of ATH-01:A and a lottery of ``people`` candidates,
    committed, closed and run: its ranking."""
    await seed.session(store, "ATH-01", day)
    await seed.programme(store, pid)
    await seed.allocate(store, "ATH-01", "A", {pid: alloc})
    for n in range(people):
        await seed.candidate(store, pid, person(n), lot)
    closes = datetime.now(UTC) + timedelta(hours=1)
    body = lottery.LotteryRequest(id=lot, session="ATH-01", category="A", closes_at=closes)
    key = kit.seal_key
    await lottery.create(store, pid, body, act("op-1"))
    await lottery.commit(store, key, pid, lot, act("op-1"))
    await seed.close_lottery(store, pid, lot)
    await lottery.run(store, key, kit.draw_signer, pid, lot, b"beacon", act())
    return await lottery.ranking(store, pid, lot)


async def test_a_lottery_verifies_with_the_draw_engine(store: Store, kit: Kit) -> None:
    key, signer = kit.seal_key, kit.draw_signer
    await seed.session(store, "ATH-01", FUTURE)
    await seed.programme(store, P)
    for n in range(25):
        await seed.candidate(store, P, person(n), "l1")
    await seed.candidate(store, P, person(99), "other")  # another lottery's: not an entry
    closes = datetime.now(UTC) + timedelta(hours=1)
    body = lottery.LotteryRequest(id="l1", session="ATH-01", category="A", closes_at=closes)
    await lottery.create(store, P, body, act("op-1"))
    with pytest.raises(Refuse) as not_committed:
        await lottery.run(store, key, signer, P, "l1", b"", act())
    assert not_committed.value.code == "not_committed"
    published = (await lottery.commit(store, key, P, "l1", act("op-1"))).commitment
    assert published is not None
    with pytest.raises(Refuse) as still_open:
        await lottery.run(store, key, signer, P, "l1", b"", act())
    assert still_open.value.code == "open"
    await seed.close_lottery(store, P, "l1")
    t = await lottery.run(store, key, signer, P, "l1", b"the beacon", act())
    ranked = await lottery.ranking(store, P, "l1")
    assert sorted(ranked) == sorted(person(n) for n in range(25))
    assert await lottery.run(store, key, signer, P, "l1", b"another", act()) == t  # ran once
    entries = [(lottery.STRATUM, p) for p in ranked]
    jwks = {"keys": [dict(j) for j in signer.published()]}
    assert audit.verify_pairs(t, entries, jwks=jwks, ranked_ids=ranked, commitment=published) == []
    tampered = [*entries[:-1], (lottery.STRATUM, person(98))]
    assert audit.verify_pairs(t, tampered) != []


async def test_forty_concurrent_assigns_give_exactly_the_ten_tickets(
    store: Store, kit: Kit
) -> None:
    ranked = await ran_lottery(store, kit, people=30, alloc=10)
    results = await asyncio.gather(
        *(designate.assign(store, P, "l1", act(f"op-{i % 2}"), most=1) for i in range(40))
    )
    assert sum(r.assigned for r in results) == 10
    assert await seed.counts(store, "ATH-01:A", P) == {"pool": 0, "alloc": 0, "assigned": 10,
                                                       "used": 0}  # fmt: skip
    holders = [await seed.candidate_record(store, P, p) for p in ranked]
    assert [h["state"] for h in holders] == ["assigned"] * 10 + ["candidate"] * 20  # rank order
    assert len(await seed.link_codes(store)) == 10
    assert await seed.invariant(store, [P]) == {"ATH-01:A": 0}


async def test_the_same_person_designated_by_two_programmes_at_once_benefits_once(
    store: Store,
) -> None:
    await seed.session(store, "ATH-01", FUTURE)
    for pid in (P, Q):
        await seed.programme(store, pid)
        await seed.candidate(store, pid, person(1))
    await seed.allocate(store, "ATH-01", "A", {P: 1, Q: 1})
    why = "a referee's nomination by the league"

    async def one(pid: str, central: bool) -> str:
        body = designate.DesignationRequest(person=person(1), session="ATH-01", category="A",
                                            justification=why)  # fmt: skip
        try:
            return (await designate.designate(store, pid, body, act("op"), central=central)).ticket
        except Refuse as exc:
            return f"{exc.code}: {exc.detail}"

    outcomes = await asyncio.gather(*(one(pid, pid == Q) for pid in (P, Q)))
    won = [o for o in outcomes if o.startswith(("youth-75.x.", "agents-13.x."))]
    assert len(won) == 1
    lost = next(o for o in outcomes if o not in won)
    assert lost.startswith("double_benefit: ")
    winner = won[0].split(".")[0]
    if winner == P:  # Q asked as central: told which programme
        assert P in lost
    else:  # P's operator is not told
        assert Q not in lost
    k = ProgrammeKeys("olympic")
    assert await store.client.hget(k.benefit, person(1)) == winner.encode()
    assert await store.client.xlen(k.exceptions(winner)) == 1
    assert await seed.invariant(store, [P, Q]) == {"ATH-01:A": 0}


async def test_a_double_benefit_holder_is_skipped_by_the_lottery(store: Store, kit: Kit) -> None:
    await seed.programme(store, Q)
    await seed.allocate(store, "ATH-01", "A", {Q: 5})
    ranked = await ran_lottery(store, kit, people=3, alloc=3)
    await seed.candidate(store, Q, ranked[0])
    body = designate.DesignationRequest(person=ranked[0], session="ATH-01", category="A",
                                        justification="x" * 20)  # fmt: skip
    await designate.designate(store, Q, body, act("op-q"), central=False)
    out = await designate.assign(store, P, "l1", act("op-1"))
    assert (out.assigned, out.double_benefit_skipped, out.allocation_left) == (2, 1, 1)
    assert (await seed.candidate_record(store, P, ranked[0]))["state"] == "candidate"
    assert await seed.invariant(store, [P, Q]) == {"ATH-01:A": 0}


async def test_a_minor_without_guardian_consent_gets_no_ticket(store: Store, kit: Kit) -> None:
    await seed.session(store, "ATH-01", FUTURE)
    await seed.programme(store, P)
    await seed.allocate(store, "ATH-01", "A", {P: 2})
    box = kit.box
    minor_until = (FUTURE + timedelta(days=1)).isoformat()
    await seed.candidate(store, P, person(1), majority_on=minor_until, name="Léa Dupont", box=box)
    await seed.candidate(store, P, person(2), majority_on=minor_until, guardian=True,
                         name="Tom Martin", box=box)  # fmt: skip
    service = kit.tickets(store)
    ids = {}
    for n in (1, 2):
        body = designate.DesignationRequest(person=person(n), session="ATH-01", category="A",
                                            justification="a school's exchange pupil")  # fmt: skip
        ids[n] = (await designate.designate(store, P, body, act("op-1"), central=False)).ticket
    codes = await seed.link_codes(store)
    caller = tickets.Caller(actor="beneficiary", code=codes[ids[1]])
    with pytest.raises(Refuse) as refused:
        await service.commit(P, ids[1], caller, "charter-1")
    assert refused.value.code == "guardian_consent_required"
    view = await service.view(P, ids[1], caller)
    assert (view.state, view.payload, view.name) == ("assigned", None, None)
    ok = await service.commit(P, ids[2], tickets.Caller("beneficiary", codes[ids[2]]), "charter-1")
    assert (ok.state, ok.charter, ok.name) == ("committed", "charter-1", "Tom Martin")
    assert ok.payload is not None


async def test_withdrawal_after_the_eve_is_refused(store: Store, kit: Kit) -> None:
    ranked = await ran_lottery(store, kit, people=3, alloc=1, day=date.today())
    await designate.assign(store, P, "l1", act("op-1"))
    holder = await seed.candidate_record(store, P, ranked[0])
    service = kit.tickets(store)
    code = (await seed.link_codes(store))[holder["ticket"]]
    with pytest.raises(Refuse) as late:
        await service.withdraw(P, holder["ticket"], tickets.Caller("beneficiary", code))
    assert late.value.code == "too_late"
    assert (await seed.candidate_record(store, P, ranked[0]))["state"] == "assigned"
    assert await seed.invariant(store, [P]) == {"ATH-01:A": 0}


async def test_withdrawal_reassigns_to_the_next_ranked_then_returns_to_the_pool(
    store: Store, kit: Kit
) -> None:
    ranked = await ran_lottery(store, kit, people=2, alloc=1)
    await designate.assign(store, P, "l1", act("op-1"))
    service = kit.tickets(store)
    first = (await seed.candidate_record(store, P, ranked[0]))["ticket"]
    code = (await seed.link_codes(store))[first]
    with pytest.raises(Refuse):  # a wrong code is no holder
        await service.withdraw(P, first, tickets.Caller("beneficiary", "A" * 24))
    out = await service.withdraw(P, first, tickets.Caller("beneficiary", code))
    assert out.outcome == "reassigned"
    assert out.reassigned_ticket is not None
    second = await seed.candidate_record(store, P, ranked[1])
    assert (second["state"], second["ticket"]) == ("assigned", out.reassigned_ticket)
    assert (await seed.candidate_record(store, P, ranked[0]))["state"] == "withdrawn"
    assert out.reassigned_ticket in await seed.link_codes(store)  # the notice went out
    assert await seed.invariant(store, [P]) == {"ATH-01:A": 0}
    last = await service.withdraw(P, out.reassigned_ticket, tickets.Caller("op-1"))
    assert (last.outcome, last.reassigned_ticket) == ("returned", None)
    assert await seed.counts(store, "ATH-01:A", P) == {"pool": 1, "alloc": 0, "assigned": 0,
                                                       "used": 0}  # fmt: skip
    from guichet.store.keys import ProgrammeKeys

    stats = await store.client.hgetall(ProgrammeKeys("olympic").stats(P))
    assert {k: int(stats[k.encode()]) for k in ("withdrawn", "reassigned", "returned")} == {
        "withdrawn": 2, "reassigned": 1, "returned": 1}  # fmt: skip
    assert await store.client.hget(ProgrammeKeys("olympic").benefit, ranked[0]) is None
    with pytest.raises(Refuse) as again:
        await service.withdraw(P, first, tickets.Caller("beneficiary", code))
    assert again.value.code == "withdrawn"
    assert await seed.invariant(store, [P]) == {"ATH-01:A": 0}


async def test_a_programme_ticket_is_scanned_once(store: Store, kit: Kit) -> None:
    await seed.session(store, "ATH-01", FUTURE)
    await seed.programme(store, P)
    await seed.allocate(store, "ATH-01", "A", {P: 1})
    await seed.candidate(store, P, person(1))
    body = designate.DesignationRequest(person=person(1), session="ATH-01", category="A",
                                        justification="a volunteer's replacement")  # fmt: skip
    tid = (await designate.designate(store, P, body, act("op-1"), central=False)).ticket
    assert await tickets.scan(store, "olympic", P, tid, "SDF-1") == ("unknown", "")  # uncommitted
    k = ProgrammeKeys("olympic")
    raw: Any = await store.client.hget(k.tickets(P), tid)  # committed (as commit would)
    await store.client.hset(k.tickets(P), tid, raw.replace(b'"assigned"', b'"committed"'))
    code, first = await tickets.scan(store, "olympic", P, tid, "SDF-1")
    assert code == "ok"
    assert await tickets.scan(store, "olympic", P, tid, "SDF-2") == ("already_used", first)
    assert await seed.counts(store, "ATH-01:A", P) == {"pool": 0, "alloc": 0, "assigned": 0,
                                                       "used": 1}  # fmt: skip
    assert await seed.invariant(store, [P]) == {"ATH-01:A": 0}


def test_the_cli_runs_and_exports_a_lottery_that_draw_verify_accepts(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from guichet.app import SCRIPTS
    from guichet.cli import main
    from guichet.store.client import connect
    from tests.conftest import settings_file

    async def prepare() -> None:
        store = connect(settings.redis, scripts=SCRIPTS)
        try:
            await seed.session(store, "ATH-01", FUTURE)
            await seed.programme(store, P)
            for n in range(12):
                await seed.candidate(store, P, person(n), "l1")
            closes = datetime.now(UTC) + timedelta(hours=1)
            body = lottery.LotteryRequest(id="l1", session="ATH-01", category="A", closes_at=closes)
            await lottery.create(store, P, body, act("op-1"))
        finally:
            await store.close()

    async def close() -> None:
        store = connect(settings.redis, scripts=SCRIPTS)
        try:
            await seed.close_lottery(store, P, "l1")
        finally:
            await store.close()

    asyncio.run(prepare())
    config = str(settings_file(settings, tmp_path / "guichet.toml"))
    assert main(["--config", config, "programme", "lottery", "commit", P, "l1"]) == 0
    published = capsys.readouterr().out.split()[-1]
    asyncio.run(close())
    run = ["--config", config, "programme", "lottery", "run", P, "l1", "--beacon-text", "b"]
    assert main(run) == 0
    out = tmp_path / "export"
    assert (
        main(["--config", config, "programme", "lottery", "export", P, "l1", "--out", str(out)])
        == 0
    )
    verify = ["draw", "verify", str(out / "transcript.json"), str(out / "entries.tsv"),
              "--jwks", str(out / "jwks.json"), "--ranking", str(out / "ranking.tsv"),
              "--commitment", published]  # fmt: skip
    assert main(["--config", config, *verify]) == 0
    assert "verifies (12 entries)" in capsys.readouterr().out
    (out / "entries.tsv").write_text(f"eligible\t{person(50)}\n", encoding="utf-8")
    assert main(["--config", config, *verify]) == 1


async def test_the_ranking_runs_off_the_event_loop(
    store: Store, kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lottery of many candidates must not stall every other request of the worker: the
    ranking (a BLAKE2b per entry and a sort) runs in a thread."""
    ranked_in: list[bool] = []
    real = draw_model.rank

    def spy(*args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            ranked_in.append(True)
        except RuntimeError:
            ranked_in.append(False)
        return real(*args)

    monkeypatch.setattr(draw_model, "rank", spy)
    ranked = await ran_lottery(store, kit, people=40)
    assert len(ranked) == 40
    assert ranked_in == [False]  # ranked once, in no event loop's thread


async def test_no_caller_text_passes_for_a_number_when_a_record_is_rewritten(store: Store) -> None:
    """Records rewritten in Lua keep µs integers exact through a marker that no stored text can
    carry: a consent version shaped like the old marker stays a string."""
    await seed.session(store, "ATH-01", FUTURE)
    await seed.programme(store, P)
    await seed.candidate(store, P, person(1))
    k = ProgrammeKeys("olympic")
    raw: Any = await store.client.hget(k.candidates(P), person(1))
    forged = raw.replace(b'"version":"v1"', b'"version":"@@int:7@@"')
    await store.client.hset(k.candidates(P), person(1), forged)
    await seed.allocate(store, "ATH-01", "A", {P: 1})
    why = "a referee's nomination by the league"
    body = designate.DesignationRequest(person=person(1), session="ATH-01", category="A",
                                        justification=why)  # fmt: skip
    await designate.designate(store, P, body, act("op"), central=False)
    record = await seed.candidate_record(store, P, person(1))
    assert record["state"] == "assigned"  # rewritten by give.lua
    assert record["consent"]["version"] == "@@int:7@@"
    assert isinstance(record["consent"]["at"], int)
    assert record["consent"]["at"] > 1_700_000_000_000_000  # a µs time


async def _acts(store: Store, action: str) -> list[tuple[str, str]]:
    """(actor, outcome) of the records of ``action`` in the olympic games' chain."""
    raw: Any = await store.client.xrange(audit_chain("taj:olympic"))
    out = [{k.decode(): v.decode() for k, v in f.items()} for _, f in raw]
    return [(r["actor"], r["outcome"]) for r in out if r["action"] == action]


async def test_an_assignment_in_batches_is_recorded_by_its_first_batch(
    store: Store, kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No act without its record at any instant: the first batch alone (its caller then gone)
    has written the record; the later batches of the same act write none."""
    await ran_lottery(store, kit, people=30, alloc=10)
    k = ProgrammeKeys("olympic")
    keys = [k.lottery(P, "l1"), k.ranking(P, "l1"), k.alloc(P), k.assigned, k.candidates(P),
            k.tickets(P), k.benefit, k.stats(P), k.outbox, k.groups(P), k.sessions]  # fmt: skip
    first = internal("op-1", "programme.lottery-assign", f"programme:{P}/lottery:l1")
    raw = await run(store, designate.DESIGNATE, k, keys,
                    [P, "l1", "op-1", designate.LOOK, "", *lottery.link_code()], first,
                    programme=P)  # fmt: skip
    assert raw[:2] == [b"ok", 1]  # one ticket given, 9 left: the act goes on
    assert await _acts(store, "programme.lottery-assign") == [("op-1", "started")]
    monkeypatch.setattr(designate, "BATCH", 2)
    second = internal("op-2", "programme.lottery-assign", f"programme:{P}/lottery:l1")
    done = await designate.assign(store, P, "l1", second)
    assert done.assigned == 9  # in five batches, one record
    assert await _acts(store, "programme.lottery-assign") == [("op-1", "started"),
                                                              ("op-2", "started")]  # fmt: skip
    assert await seed.invariant(store, [P]) == {"ATH-01:A": 0}
