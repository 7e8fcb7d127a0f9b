"""``guichet programme report`` (issue 15 item 3): a programme built over HTTP (pool, allocation,
candidates, a lottery run, an exception, a withdrawal reassigned, a reclaim) gets a report
whose numbers match the stored stats and the pool audit, whose files match its manifest, whose
digest is recorded in the games' audit chain (a new record on each run), and whose HTML opens in
headless Chromium with its summary visible. The demo plan's programmes get one too."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from playwright.async_api import Browser

from guichet import demo, opscli
from guichet.audit import anchors
from guichet.audit.act import Act
from guichet.audit.record import FIELDS, GENESIS, from_stream, record_hash
from guichet.config import Settings
from guichet.programme import demo_plan, report
from guichet.programme.pool_service import PoolService, audit
from guichet.store.client import Store
from tests.conftest import Client, Tokens
from tests.e2e import chromium
from tests.e2e.chromium import browser as browser
from tests.e2e.programme_helpers import (
    allocate,
    auditor,
    central,
    declared,  # noqa: F401 (the fixture)
    load_pool,
    operator,
    pool_rows,
    put_programme,
)
from tests.e2e.test_programme_flow_http import assign, candidate, cli_run, lottery, register
from tests.programme_seed_c import close_lottery

chromium.require()
pytestmark = pytest.mark.usefixtures("declared")

P = "youth-75"
ADMIN = "/v1/admin/programmes"
DAY = date.today() + timedelta(days=30)


def table(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


async def chain(store: Store, games: str = "olympic") -> list[Any]:
    raw: Any = await store.client.xrange(Act.key(f"taj:{games}"))
    return [from_stream(f"taj:{games}", f) for _, f in raw]


async def run_report(settings: Settings, tmp_path: Path, out: Path) -> tuple[str, int]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = await cli_run(settings, tmp_path, "programme", "report", "--programme", P,
                             "--out", str(out))  # fmt: skip
    assert code == 0
    text = printed.getvalue()
    digest = text.split("digest ", 1)[1].split()[0]
    seq = int(text.rsplit(" seq ", 1)[1])
    assert str(out) in text
    return digest, seq


async def build(client: Client, store: Store, tokens: Tokens) -> dict[str, Any]:
    """The programme through its API; the lottery's list closes by moving its close time."""
    rows = [{**r, "date": (DAY + timedelta(days=i // 2)).isoformat()}
            for i, r in enumerate(pool_rows())]  # fmt: skip
    await load_pool(client, tokens, rows)
    later = {"reclaim_on": (DAY + timedelta(days=60)).isoformat(),
             "retention_until": (DAY + timedelta(days=365)).isoformat()}  # fmt: skip
    await put_programme(client, tokens, P, **later)
    await allocate(client, tokens, P, {"ATH-00:A": 2, "ATH-01:A": 1, "ATH-02:B": 4})
    closes = datetime.now(UTC) + timedelta(hours=1)
    await lottery(client, tokens, P, "l1", "ATH-00:A", closes)
    people = [await register(client, tokens, P, candidate(n, "l1")) for n in range(5)]
    op = operator(tokens, P)
    body = {"person": people[4]["pseudonym"], "session": "ATH-01", "category": "A",
            "justification": "<script>named by the mission locale</script>"}  # fmt: skip
    r = await client.post(f"{ADMIN}/{P}/designations", json=body, headers=op)
    assert r.status == 201, await r.text()
    exception = (await r.json())["ticket"]
    await close_lottery(store, P, "l1")
    r = await client.post(f"{ADMIN}/{P}/lotteries/l1/run", json={"beacon_text": "b"}, headers=op)
    assert r.status == 200, await r.text()
    assert (await assign(client, tokens, P, "l1"))["assigned"] == 2
    raw: Any = await store.client.hgetall(f"g:{{taj:olympic}}:tickets:{P}")
    first = sorted(k.decode() for k in raw if k.decode().startswith(f"{P}.l1."))[0]
    r = await client.post(f"{ADMIN}/{P}/tickets/{first}/withdraw", headers=op)
    assert r.status == 200, await r.text()
    reassigned = await r.json()
    assert reassigned["outcome"] == "reassigned"
    past = {"reclaim_on": (date.today() - timedelta(days=2)).isoformat(),
            "retention_until": (DAY + timedelta(days=365)).isoformat()}  # fmt: skip
    await put_programme(client, tokens, P, **past)
    r = await client.post("/v1/admin/programme/reclaim", json={"games": "olympic"},
                          headers=central(tokens))  # fmt: skip
    assert r.status == 200, await r.text()
    return {"exception": exception, "withdrawn": first,
            "reassigned": reassigned["reassigned_ticket"]}  # fmt: skip


async def test_a_report_matches_the_store_and_is_recorded(
    client: Client, store: Store, tokens: Tokens, settings: Settings, tmp_path: Path,
    browser: Browser,
) -> None:  # fmt: skip
    made = await build(client, store, tokens)
    out = tmp_path / "report"
    digest, seq = await run_report(settings, tmp_path, out)

    # the manifest lists every file with its SHA-256; the digest is the manifest's
    manifest = (out / "manifest.json").read_bytes()
    assert hashlib.sha256(manifest).hexdigest() == digest
    listed = {f["name"]: f["sha256"] for f in json.loads(manifest)["files"]}
    assert set(listed) == {p.name for p in out.iterdir()} - {"manifest.json"}
    for name, sha in listed.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == sha
    assert "lottery-l1.transcript.json" in listed

    # the digest's record is in the games' chain
    records = await chain(store)
    mine = next(r for r in records if r.seq == seq)
    assert (mine.action, mine.object, mine.digest) == ("programme.report", f"programme:{P}",
                                                       digest)  # fmt: skip

    # numbers: the stored stats (GET programme) and the pool audit
    r = await client.get(f"{ADMIN}/{P}", headers=central(tokens))
    stats = (await r.json())["stats"]
    r = await client.get("/v1/admin/programme/audit?games=olympic", headers=auditor(tokens))
    pool = await r.json()
    html = (out / "report.html").read_text(encoding="utf-8")
    data, _ = await _gathered(store, settings)
    s = data.summary
    assert s.loaded == pool["loaded"] == 600
    assert (s.allocated, s.withdrawn, s.reassigned, s.returned, s.reclaimed) == (
        stats["allocated"], stats["withdrawn"], stats["reassigned"], stats.get("returned", 0),
        stats["reclaimed"])  # fmt: skip
    assert (s.allocated, s.withdrawn, s.reassigned, s.returned, s.reclaimed) == (7, 1, 1, 0, 4)
    assert (s.assigned, s.used, s.exceptions, s.unassigned) == (3, 0, 1, 0)
    assert data.pool_breaches == []
    assert "&lt;script&gt;named by the mission locale&lt;/script&gt;" in html

    # annexes
    withdrawals = table(out / "withdrawals.csv")
    assert [(w["ticket"], w["outcome"], w["reassigned_ticket"]) for w in withdrawals] == [
        (made["withdrawn"], "reassigned", made["reassigned"])]  # fmt: skip
    assert [w["withdrawn_ticket"] for w in table(out / "reassignments.csv")] == [made["withdrawn"]]
    assert table(out / "returns.csv") == []
    designations = table(out / "designations.csv")
    exc = [d for d in designations if d["kind"] == "exception"]
    assert [(d["ticket"], d["justification"]) for d in exc] == [
        (made["exception"], "<script>named by the mission locale</script>")]  # fmt: skip
    assert len(designations) == 4  # 2 from the lottery, 1 reassigned, 1 exception
    reclaim = table(out / "reclaim.csv")
    assert [int(x["tickets"]) for x in reclaim] == [stats["reclaimed"]]
    allocation = table(out / "allocation.csv")
    assert sum(int(a["quantity"]) for a in allocation) == stats["allocated"]
    assert [x["state"] for x in table(out / "assignments.csv")].count("withdrawn") == 1
    filed = await (await client.get("/v1/admin/programme/declarations?games=olympic",
                                    headers=auditor(tokens))).json()  # fmt: skip
    declared_rows = table(out / "declarations.csv")
    assert sorted(d["subject"] for d in declared_rows) == sorted(
        d["subject"] for d in filed["declarations"]
    )  # every agent's declaration, as filed
    assert declared_rows
    assert all(d["conflicts"] == "[]" for d in declared_rows)
    people = {c for row in designations for c in row.values()}
    assert not any(len(c) == 64 and c.isalnum() for c in people if c)  # no pseudonym

    # the lottery verifies (as `guichet draw verify` does) and the chain verifies
    assert [(x.id, x.result) for x in data.lotteries] == [("l1", "verified")]
    assert data.chain.result == "verified"

    # a second run: a new record, chained to the first
    again = tmp_path / "again"
    digest2, seq2 = await run_report(settings, tmp_path, again)
    assert seq2 == seq + 1
    records = await chain(store)
    assert records[-1].prev == records[-2].hash
    assert records[-1].digest == digest2
    assert table(again / "audit.csv")[-1]["action"] == "programme.report"

    # the HTML opens in Chromium, its summary table visible
    page = await browser.new_page()
    await page.goto((out / "report.html").as_uri())
    summary = page.locator("#summary")
    assert await summary.is_visible()
    assert "allocated to this programme" in await summary.inner_text()
    assert await page.title() == f"Control report — programme {P}"
    await page.close()


async def _gathered(store: Store, settings: Settings) -> Any:
    jwks = await asyncio.to_thread(report.jwks_of, settings)
    audit_jwks = await asyncio.to_thread(report.audit_jwks_of, settings)
    return await report.gather(store, jwks, P, "cli:test", audit_jwks)


async def test_the_chain_check_rests_on_the_signed_anchors(
    client: Client, store: Store, tokens: Tokens, settings: Settings
) -> None:
    """A record rewritten with its hash links recomputed passes the links alone; the anchor
    signed over the chain (checked against the published audit keys) catches it."""
    await build(client, store, tokens)
    ring = await asyncio.to_thread(anchors.keyring, settings.audit)
    assert await anchors.sign_once(store, ring) == "appended"
    data, _ = await _gathered(store, settings)
    assert data.chain.result == "verified"
    assert data.chain.anchors >= 1  # (the service may have signed one too)
    assert data.chain.unanchored == 0
    # rewrite the chain: the first record's actor changed, every hash and link recomputed
    key = Act.key("taj:olympic")
    old = await chain(store)
    await store.client.delete(key)
    prev = GENESIS
    for r in old:
        actor = "someone-else" if r.seq == 1 else r.actor
        new = msgspec.structs.replace(r, actor=actor, prev=prev, hash="")
        new = msgspec.structs.replace(new, hash=record_hash(new))
        fields = {f: str(getattr(new, f)) for f in FIELDS}
        await store.client.xadd(key, fields)  # type: ignore[arg-type]
        prev = new.hash
    data, _ = await _gathered(store, settings)
    assert data.chain.result.startswith("FAILED")


async def test_an_unknown_programme_writes_nothing(
    settings: Settings, tmp_path: Path, store: Store
) -> None:
    before = await chain(store)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = await cli_run(settings, tmp_path, "programme", "report", "--programme", "nope",
                             "--out", str(tmp_path / "none"))  # fmt: skip
    assert code == 1
    assert "no programme 'nope'" in err.getvalue()
    assert not (tmp_path / "none").exists()
    assert await chain(store) == before


def test_a_report_of_a_demo_programme_matches_the_pool_audit(
    settings: Settings, tmp_path: Path
) -> None:
    """Sync, as ``guichet demo`` and the ops commands run (the demo reads its catalogue file)."""
    p = demo_plan.programme_id("youth", "olympic")
    jwks, audit_jwks = report.jwks_of(settings), report.audit_jwks_of(settings)

    async def work(store: Store) -> Any:
        loaded = await demo.load_programme(store, settings, games_in_days=120, candidates=4)
        made = await report.produce(store, jwks, audit_jwks, p, tmp_path / "demo", "cli:test")
        return loaded, made, await PoolService(store).levels("olympic"), await chain(store)

    scripts = (*demo.PROGRAMME_SCRIPTS, *report.SCRIPTS)
    loaded, (digest, seq, data), levels, records = opscli.with_store(settings, scripts, work)
    assert audit(levels) == data.pool_breaches == []
    s = data.summary
    assert s.loaded == sum(levels.loaded.values())
    assert s.allocated == loaded["programmes"][p]["allocated"]
    assert s.unassigned == sum(levels.alloc[p].values())
    assert s.assigned == loaded["programmes"][p]["lottery"]["assigned"] == 2
    assert s.allocated == s.unassigned + s.assigned + s.used
    assert [x.result for x in data.lotteries] == ["verified"]
    assert (records[-1].seq, records[-1].digest) == (seq, digest)
    # the report's numbers match the audit log: its chain verified, its records by action are
    # the chain's records of this programme (all but the report's own, written after)
    assert data.chain.result == "verified"
    mine = [r for r in records[:-1]
            if r.object == f"programme:{p}" or r.object.startswith(f"programme:{p}/")]  # fmt: skip
    assert data.actions == dict(sorted(Counter(r.action for r in mine).items()))
    assert data.actions["programme.allocate"] >= 1
    assert data.actions["programme.lottery-run"] == len(data.lotteries) == 1
    assert (tmp_path / "demo" / "report.html").exists()
