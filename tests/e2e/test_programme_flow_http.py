"""The State programme end to end over HTTP, through its real API only (issue 14): the central
coordinator loads a pool, creates two programmes and allocates; operators create and commit
lotteries and register candidates (a group's through its invited leader, a minor whose
guardian's consent comes later); the lotteries close and run, their exports pass
``guichet draw verify``; tickets are assigned, committed, fetched and scanned; withdrawals are
reassigned or returned to the pool; the unassigned allocation is reclaimed after its date; the
names are purged. The audit is clean after every step, and at the end no key, field or value
in Valkey holds a plain name.

The only reads that bypass HTTP are the outbox stream (the notices the messenger would send,
each carrying its beneficiary's link code) and the final scan of every key."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from guichet import cli
from guichet.config import Settings
from guichet.programme.identity import normalise
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys
from tests.conftest import Client, Tokens, settings_file
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

pytestmark = pytest.mark.usefixtures("declared")

YOUTH, AGENTS = "youth-75", "agents-13"
ADMIN = "/v1/admin/programmes"
DAY = date.today() + timedelta(days=30)  # every session: far enough for withdrawals
CRITERIA = ["age-16-25", "resident"]
#: Every plain name registered below (family, given): none may remain anywhere in Valkey.
PEOPLE = [
    ("Aubertin-Kowalczyk", "Maëlys"), ("Brisefer-Ndiaye", "Théodore"),
    ("Casimir-Ottolenghi", "Ysaline"), ("Dufresnoy-Haddad", "Anatole"),
    ("Esterhazy-Moreau", "Clothilde"), ("Ferrandini-Bakari", "Ulysse"),
    ("Garancière-Lindqvist", "Philibert"), ("Hautecloque-Mbappa", "Séraphine"),
    ("Isambert-Quennell", "Victorin"),
]  # fmt: skip
LEADER = "acc-leader-1"
OTHER_LEADER = "acc-leader-2"


def account(tokens: Tokens, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.account(name)}"}


def candidate(n: int, lottery: str, birth: str = "2003-05-06", **more: Any) -> dict[str, Any]:
    family, given = PEOPLE[n]
    return {"family_name": family, "given_names": given, "birth_date": birth,
            "lottery": lottery, "criteria": CRITERIA,
            "consent": {"version": "charte-v1", "collected_at": "2024-02-01T10:00:00Z",
                        "collected_by": "mission-locale-75"}, **more}  # fmt: skip


async def audit_clean(client: Client, tokens: Tokens, loaded: int = 600) -> dict[str, Any]:
    """The audit (as an auditor): pool + allocated + assigned + used = loaded, no breach."""
    r = await client.get("/v1/admin/programme/audit?games=olympic", headers=auditor(tokens))
    assert r.status == 200, await r.text()
    a: dict[str, Any] = await r.json()
    assert a["breaches"] == []
    assert a["pool"] + a["allocated"] + a["assigned"] + a["used"] == a["loaded"] == loaded
    return a


async def codes(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """Ticket id -> link code of the notices not yet sent, read and acknowledged as the mail
    sender does (``guichet outbox read programme:olympic`` then ``ack``)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert await cli_run(settings, tmp_path, "outbox", "read", "programme:olympic") == 0
    notices = [json.loads(line) for line in out.getvalue().splitlines()]
    if notices:
        ids = [n["id"] for n in notices]
        with contextlib.redirect_stdout(io.StringIO()):
            acked = await cli_run(settings, tmp_path, "outbox", "ack", "programme:olympic", *ids)
        assert acked == 0
    return {n["ticket"]: n["link"].rpartition("#")[2] for n in notices}


async def candidate_json(store: Store, person: str) -> Any:
    """A youth candidate's stored record, as JSON."""
    raw: Any = await store.client.hget(ProgrammeKeys("olympic").candidates(YOUTH), person)
    return json.loads(raw)


async def stats(client: Client, tokens: Tokens, programme: str) -> dict[str, int]:
    r = await client.get(f"{ADMIN}/{programme}", headers=central(tokens))
    assert r.status == 200, await r.text()
    out: dict[str, int] = (await r.json())["stats"]
    return out


async def register(
    client: Client, tokens: Tokens, programme: str, body: dict[str, Any]
) -> dict[str, Any]:
    r = await client.post(f"{ADMIN}/{programme}/candidates", json=body,
                          headers=operator(tokens, programme))  # fmt: skip
    assert r.status == 201, await r.text()
    out: dict[str, Any] = await r.json()
    return out


async def lottery(
    client: Client, tokens: Tokens, programme: str, lot: str, item: str, closes: datetime
) -> str:
    """Create and commit a lottery: its published commitment."""
    session, _, category = item.partition(":")
    body = {"id": lot, "session": session, "category": category,
            "closes_at": closes.isoformat()}  # fmt: skip
    op = operator(tokens, programme)
    r = await client.post(f"{ADMIN}/{programme}/lotteries", json=body, headers=op)
    assert r.status == 201, await r.text()
    r = await client.post(f"{ADMIN}/{programme}/lotteries/{lot}/commit", headers=op)
    assert r.status == 200, await r.text()
    commitment: str = (await r.json())["commitment"]
    return commitment


async def run(client: Client, tokens: Tokens, programme: str, lot: str, closes: datetime) -> Any:
    """Run the lottery once its list has closed (the close is an instant: wait for it)."""
    await asyncio.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()))
    url = f"{ADMIN}/{programme}/lotteries/{lot}/run"
    for _ in range(50):  # Redis TIME may trail this clock by a little
        r = await client.post(url, json={"beacon_text": "CAC40 close 2024-06-01"},
                              headers=operator(tokens, programme))  # fmt: skip
        if r.status != 409:
            break
        await asyncio.sleep(0.1)
    assert r.status == 200, await r.text()
    return await r.json()


async def assign(client: Client, tokens: Tokens, programme: str, lot: str) -> dict[str, Any]:
    r = await client.post(f"{ADMIN}/{programme}/lotteries/{lot}/assign", json={},
                          headers=operator(tokens, programme))  # fmt: skip
    assert r.status == 200, await r.text()
    out: dict[str, Any] = await r.json()
    return out


async def cli_run(settings: Settings, tmp_path: Path, *args: str) -> int:
    config = settings_file(settings, tmp_path / "ops.toml")
    return await asyncio.to_thread(cli.main, ["--config", str(config), *args])


async def test_the_programme_end_to_end(
    client: Client, store: Store, tokens: Tokens, settings: Settings, tmp_path: Path
) -> None:
    # --- central: the pool, two programmes, allocations --------------------------------------
    rows = [{**r, "date": (DAY + timedelta(days=i // 2)).isoformat()}
            for i, r in enumerate(pool_rows())]  # fmt: skip
    await load_pool(client, tokens, rows)
    await audit_clean(client, tokens)
    later = {"reclaim_on": (DAY + timedelta(days=60)).isoformat(),
             "retention_until": (DAY + timedelta(days=365)).isoformat()}  # fmt: skip
    await put_programme(client, tokens, YOUTH, **later)
    await put_programme(client, tokens, AGENTS, public="agents", **later)
    await allocate(client, tokens, YOUTH, {"ATH-00:A": 3, "ATH-01:A": 2, "ATH-02:A": 1})
    await allocate(client, tokens, AGENTS, {"ATH-00:A": 1, "ATH-02:B": 5})
    assert (await audit_clean(client, tokens))["allocated"] == 12

    # --- operators: lotteries committed before their lists close -----------------------------
    closes = datetime.now(UTC) + timedelta(seconds=4)
    published = {
        "l1": await lottery(client, tokens, YOUTH, "l1", "ATH-00:A", closes),
        "l2": await lottery(client, tokens, YOUTH, "l2", "ATH-01:A", closes),
        "a1": await lottery(client, tokens, AGENTS, "a1", "ATH-00:A", closes),
    }

    # a group: the operator invites its leader, who registers its members with its account
    r = await client.post(f"{ADMIN}/{YOUTH}/groups", json={"id": "g1", "leader": LEADER},
                          headers=operator(tokens, YOUTH))  # fmt: skip
    assert r.status == 201, await r.text()
    r = await client.post(f"{ADMIN}/{YOUTH}/groups", json={"id": "g2", "leader": OTHER_LEADER},
                          headers=operator(tokens, YOUTH))  # fmt: skip
    assert r.status == 201, await r.text()
    group_url = f"/v1/programmes/{YOUTH}/groups/g1/candidates"
    members = []
    for n in (0, 1):
        r = await client.post(group_url, json=candidate(n, "l1"), headers=account(tokens, LEADER))
        assert r.status == 201, await r.text()
        members.append((await r.json())["pseudonym"])
    r = await client.post(group_url, json=candidate(2, "l1"),
                          headers=account(tokens, OTHER_LEADER))  # fmt: skip
    assert r.status == 403
    youth = [await register(client, tokens, YOUTH, candidate(n, "l1")) for n in (2, 3, 4)]
    l1 = members + [c["pseudonym"] for c in youth]
    # l2: a minor on the session's day (guardian's consent later), and an adult
    minor_birth = (DAY - timedelta(days=17 * 365)).isoformat()
    minor = await register(client, tokens, YOUTH, candidate(5, "l2", birth=minor_birth))
    assert (minor["minor"], minor["guardian_consent"]) == (True, "missing")
    adult = await register(client, tokens, YOUTH, candidate(6, "l2"))
    # minimised: only someone under 18 at some session keeps a majority day (their birth date)
    kept = {p: (await candidate_json(store, p))["majority_on"]
            for p in (minor["pseudonym"], adult["pseudonym"])}  # fmt: skip
    assert kept[adult["pseudonym"]] is None
    assert kept[minor["pseudonym"]] is not None
    # a1: person 2 again (registered in both programmes), and another
    both = await register(client, tokens, AGENTS, candidate(2, "a1"))
    assert both["pseudonym"] == youth[0]["pseudonym"]  # one pseudonym in every programme
    await register(client, tokens, AGENTS, candidate(7, "a1"))
    # an exception: a candidate of l2's list designated without lottery (ATH-02:A)
    spare = await register(client, tokens, YOUTH, candidate(8, "l2"))
    await audit_clean(client, tokens)

    # --- the lists close; the lotteries run; their exports verify -----------------------------
    ran = {}
    for programme, lot in ((YOUTH, "l1"), (YOUTH, "l2"), (AGENTS, "a1")):
        ran[lot] = await run(client, tokens, programme, lot, closes)
    assert (ran["l1"]["entries"], ran["l2"]["entries"], ran["a1"]["entries"]) == (5, 3, 2)
    for programme, lot in ((YOUTH, "l1"), (AGENTS, "a1")):
        out = tmp_path / f"export-{lot}"
        assert await cli_run(settings, tmp_path, "programme", "lottery", "export", programme,
                             lot, "--out", str(out)) == 0  # fmt: skip
        assert await cli_run(settings, tmp_path, "draw", "verify", str(out / "transcript.json"),
                             str(out / "entries.tsv"), "--jwks",
                             str(out / "jwks.json"), "--ranking",
                             str(out / "ranking.tsv"), "--commitment",
                             published[lot]) == 0  # fmt: skip
    await audit_clean(client, tokens)

    # --- designation ----------------------------------------------------------------------
    body = {"person": spare["pseudonym"], "session": "ATH-02", "category": "A",
            "justification": "replacement named by the youth mission"}  # fmt: skip
    r = await client.post(f"{ADMIN}/{YOUTH}/designations", json=body,
                          headers=operator(tokens, YOUTH))  # fmt: skip
    assert r.status == 201, await r.text()
    exception_ticket = (await r.json())["ticket"]
    # the agents' lottery first: person 2 may benefit there, then never in youth-75
    a1 = await assign(client, tokens, AGENTS, "a1")
    assert a1["assigned"] == 1
    given = await assign(client, tokens, YOUTH, "l1")
    assert given["assigned"] == 3
    assert (await assign(client, tokens, YOUTH, "l2"))["assigned"] == 2
    s = await stats(client, tokens, YOUTH)
    assert s["consents_missing"] == 1  # the minor of l2 holds a ticket, no guardian yet
    audit = await audit_clean(client, tokens)
    assert audit["assigned"] == 1 + 1 + 3 + 2
    links = await codes(settings, tmp_path)
    assert len(links) == 7
    assert await codes(settings, tmp_path) == {}  # acknowledged: not read again

    # --- the minor: no commitment without the guardian's consent --------------------------
    records = {}
    for pid in (YOUTH, AGENTS):
        raw: Any = await store.client.hgetall(ProgrammeKeys("olympic").tickets(pid))
        records.update({k.decode(): json.loads(v) for k, v in raw.items()})
    holder = {records[t]["person"]: t for t in links}
    minor_ticket = holder[minor["pseudonym"]]
    commit = {"charter_version": "charte-v1", "attend": True}
    url = f"/v1/programmes/{YOUTH}/tickets/{minor_ticket}"
    r = await client.post(f"{url}/commit", json={**commit, "code": links[minor_ticket]})
    assert r.status == 409
    assert (await r.json())["type"].endswith("guardian-consent-required")
    guardian = {
        "name": "Gaspard Tuteur",
        "relationship": "parent",
        "consented_at": "2024-03-01T09:00:00Z",
    }
    r = await client.put(f"{ADMIN}/{YOUTH}/candidates/{minor['pseudonym']}/guardian",
                         json=guardian, headers=operator(tokens, YOUTH))  # fmt: skip
    assert r.status == 200, await r.text()
    assert (await stats(client, tokens, YOUTH))["consents_missing"] == 0
    r = await client.post(f"{url}/commit", json={**commit, "code": links[minor_ticket]})
    assert r.status == 200, await r.text()

    # --- a beneficiary commits, fetches its ticket, the gate scans it once ------------------
    first = next(t for t in links if t.startswith(f"{YOUTH}.l1."))
    url = f"/v1/programmes/{YOUTH}/tickets/{first}"
    code = {"X-Ticket-Code": links[first]}
    r = await client.post(f"{url}/commit", json={**commit, "code": links[first]})
    assert r.status == 200, await r.text()
    ticket = await r.json()
    family, given_names = PEOPLE[l1.index(records[first]["person"])]
    assert ticket["name"] == f"{given_names} {family}"
    r = await client.get(url, headers=code)
    assert (r.status, (await r.json())["payload"]) == (200, ticket["payload"])
    # the programme's operator reads it too (name included); another programme's cannot
    r = await client.get(f"{ADMIN}/{YOUTH}/tickets/{first}", headers=operator(tokens, YOUTH))
    assert (r.status, (await r.json())["name"]) == (200, ticket["name"])
    r = await client.get(f"{ADMIN}/{YOUTH}/tickets/{first}", headers=operator(tokens, AGENTS))
    assert r.status == 403
    r = await client.get(url)  # neither a code nor a leader's account
    assert r.status == 401
    r = await client.get(url, params={"format": "svg"}, headers=code)
    assert (r.status, r.content_type) == (200, "image/svg+xml")
    gate = {"Authorization": f"Bearer {tokens.admin('gates:scan')}"}
    scan = {"payload": ticket["payload"], "gate": "SDF-N3"}
    r = await client.post("/v1/admin/gates/scan", json=scan, headers=gate)
    assert r.status == 200, await r.text()
    r = await client.post("/v1/admin/gates/scan", json=scan, headers=gate)
    assert r.status == 409
    assert (await audit_clean(client, tokens))["used"] == 1

    # --- withdrawal before the eve: reassigned to the next ranked candidate ------------------
    second = next(t for t in links if t.startswith(f"{YOUTH}.l1.") and t != first)
    r = await client.post(f"/v1/programmes/{YOUTH}/tickets/{second}/withdraw",
                          json={"code": links[second]})  # fmt: skip
    assert r.status == 200, await r.text()
    out = await r.json()
    assert out["outcome"] == "reassigned"
    links.update(fresh := await codes(settings, tmp_path))
    assert list(fresh) == [out["reassigned_ticket"]]
    await audit_clean(client, tokens)
    # l2's ranking is exhausted: the adult's withdrawal returns the seat to the pool
    adult_ticket = holder[adult["pseudonym"]]
    pool_before = (await audit_clean(client, tokens))["pool"]
    r = await client.post(f"{ADMIN}/{YOUTH}/tickets/{adult_ticket}/withdraw",
                          headers=operator(tokens, YOUTH))  # fmt: skip
    assert r.status == 200, await r.text()
    assert (await r.json())["outcome"] == "returned"
    assert (await audit_clean(client, tokens))["pool"] == pool_before + 1
    # the exception's ticket: withdrawn by the operator, back to the pool
    r = await client.post(f"{ADMIN}/{YOUTH}/tickets/{exception_ticket}/withdraw",
                          headers=operator(tokens, YOUTH))  # fmt: skip
    assert r.status == 200, await r.text()
    assert (await r.json())["outcome"] == "returned"
    assert (await audit_clean(client, tokens))["pool"] == pool_before + 2

    # --- reclaim: refused before the date, then done after it -------------------------------
    r = await client.post("/v1/admin/programme/reclaim", json={"games": "olympic"},
                          headers=central(tokens))  # fmt: skip
    assert r.status == 409
    past = {"reclaim_on": (date.today() - timedelta(days=2)).isoformat(),
            "retention_until": (date.today() + timedelta(days=30)).isoformat()}  # fmt: skip
    await put_programme(client, tokens, AGENTS, public="agents", **past)
    r = await client.post("/v1/admin/programme/reclaim", json={"games": "olympic"},
                          headers=central(tokens))  # fmt: skip
    assert r.status == 200, await r.text()
    report = {p["programme"]: p for p in (await r.json())["programmes"]}
    assert (report[AGENTS]["outcome"], report[AGENTS]["tickets"]) == ("reclaimed", 5)
    assert report[YOUTH]["outcome"] == "too_early"
    assert (await audit_clean(client, tokens))["pool"] == pool_before + 2 + 5

    # --- purge after the retention date ----------------------------------------------------
    for pid, public in ((YOUTH, "youth"), (AGENTS, "agents")):
        r = await client.post(f"{ADMIN}/{pid}/purge", headers=central(tokens))
        assert r.status == 409  # retention not over
        over = {"reclaim_on": (date.today() - timedelta(days=3)).isoformat(),
                "retention_until": (date.today() - timedelta(days=1)).isoformat()}  # fmt: skip
        await put_programme(client, tokens, pid, public=public, **over)
        r = await client.post(f"{ADMIN}/{pid}/purge", headers=central(tokens))
        assert r.status == 200, await r.text()
    await audit_clean(client, tokens)
    record = await candidate_json(store, minor["pseudonym"])
    assert (record["name"], record["majority_on"]) == (None, None)
    assert record["guardian"]["sealed_name"] is None
    # after the purge: no nominative ticket can be committed, no guardian's name recorded
    now: Any = await store.client.hgetall(ProgrammeKeys("olympic").tickets(YOUTH))
    states = {t.decode(): json.loads(v)["state"] for t, v in now.items()}
    uncommitted = next(t for t in links if states.get(t) == "assigned")
    r = await client.post(f"/v1/programmes/{YOUTH}/tickets/{uncommitted}/commit",
                          json={**commit, "code": links[uncommitted]})  # fmt: skip
    assert (r.status, (await r.json())["type"].rsplit("/", 1)[-1]) == (409, "name-missing")
    r = await client.put(f"{ADMIN}/{YOUTH}/candidates/{adult['pseudonym']}/guardian",
                         json=guardian, headers=operator(tokens, YOUTH))  # fmt: skip
    assert (r.status, (await r.json())["type"].rsplit("/", 1)[-1]) == (409, "retention-over")

    # --- no key, field or value holds a plain name ------------------------------------------
    await no_plain_name(store)


def needles() -> list[bytes]:
    out: set[bytes] = set()
    for family, given in [*PEOPLE, ("Tuteur", "Gaspard")]:  # the candidates and a guardian
        for text in (family, given, normalise(family), normalise(given)):
            out.add(text.encode())
            out.add(text.lower().encode())
            out.add(json.dumps(text).strip('"').encode())  # as JSON escapes it
    return sorted(out)


async def no_plain_name(store: Store) -> None:
    found: list[str] = []
    seen = 0
    began = time.monotonic()
    r: Any = store.client  # bytes in, bytes out
    async for key in r.scan_iter(count=500):
        seen += 1
        kind = (await r.type(key)).decode()
        blobs: list[bytes] = [key]
        if kind == "string":
            blobs.append(await r.get(key) or b"")
        elif kind == "hash":
            for f, v in (await r.hgetall(key)).items():
                blobs += [f, v]
        elif kind == "list":
            blobs += await r.lrange(key, 0, -1)
        elif kind == "set":
            blobs += list(await r.smembers(key))
        elif kind == "zset":
            blobs += [m for m, _ in await r.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            for _, fields in await r.xrange(key):
                for f, v in fields.items():
                    blobs += [f, v]
        for blob in blobs:
            for needle in needles():
                if needle in blob:
                    found.append(f"{key!r} holds {needle!r}")
    assert seen > 20, time.monotonic() - began
    assert found == []


async def test_a_leader_commits_and_withdraws_for_its_group_only(
    client: Client, store: Store, tokens: Tokens
) -> None:
    rows = [{**r, "date": DAY.isoformat()} for r in pool_rows(sessions=1)]
    await load_pool(client, tokens, rows)
    later = {"reclaim_on": (DAY + timedelta(days=60)).isoformat(),
             "retention_until": (DAY + timedelta(days=365)).isoformat()}  # fmt: skip
    await put_programme(client, tokens, YOUTH, **later)
    await allocate(client, tokens, YOUTH, {"ATH-00:A": 3})
    await lottery(client, tokens, YOUTH, "l1", "ATH-00:A", datetime.now(UTC) + timedelta(hours=1))
    op = operator(tokens, YOUTH)
    for group, lead in (("g1", LEADER), ("g2", OTHER_LEADER)):
        r = await client.post(f"{ADMIN}/{YOUTH}/groups", json={"id": group, "leader": lead},
                              headers=op)  # fmt: skip
        assert r.status == 201, await r.text()
    minor_birth = (DAY - timedelta(days=17 * 365)).isoformat()
    tickets = []
    for body in (candidate(0, "l1"), candidate(1, "l1", birth=minor_birth)):
        r = await client.post(f"/v1/programmes/{YOUTH}/groups/g1/candidates", json=body,
                              headers=account(tokens, LEADER))  # fmt: skip
        assert r.status == 201, await r.text()
        why = {"person": (await r.json())["pseudonym"], "session": "ATH-00", "category": "A",
               "justification": "the club's volunteers named by the league"}  # fmt: skip
        r = await client.post(f"{ADMIN}/{YOUTH}/designations", json=why, headers=op)
        assert r.status == 201, await r.text()
        tickets.append((await r.json())["ticket"])
    adult, minor = tickets
    assert (await stats(client, tokens, YOUTH))["consents_missing"] == 1
    commit = {"charter_version": "charte-v1", "attend": True}

    def url(ticket: str, act: str = "") -> str:
        return f"/v1/programmes/{YOUTH}/tickets/{ticket}{act}"

    # another group's leader: 403 on every act; an account that leads nothing: no such ticket
    other, stranger = account(tokens, OTHER_LEADER), account(tokens, "acc-nobody")
    for headers, status in ((other, 403), (stranger, 404)):
        r = await client.get(url(adult), headers=headers)
        assert r.status == status, await r.text()
        r = await client.post(url(adult, "/commit"), json=commit, headers=headers)
        assert r.status == status, await r.text()
        r = await client.post(url(adult, "/withdraw"), json={}, headers=headers)
        assert r.status == status, await r.text()
        assert r.content_type == "application/problem+json"
    audit = await audit_clean(client, tokens, 200)
    assert audit["assigned"] == 2

    # its own leader: fetches, commits (the printed name in the ticket), withdraws
    leader = account(tokens, LEADER)
    r = await client.get(url(adult), headers=leader)
    assert (r.status, (await r.json())["state"]) == (200, "assigned")
    r = await client.post(url(adult, "/commit"), json=commit, headers=leader)
    assert r.status == 200, await r.text()
    family, given = PEOPLE[0]
    assert (await r.json())["name"] == f"{given} {family}"
    r = await client.post(url(minor, "/commit"), json=commit, headers=leader)
    assert r.status == 409
    assert (await r.json())["type"].endswith("guardian-consent-required")
    # the minor's ticket withdrawn without a guardian's consent: no consent is missing any more
    r = await client.post(url(minor, "/withdraw"), json={}, headers=leader)
    assert r.status == 200, await r.text()
    assert (await r.json())["outcome"] == "returned"  # an exception's seat: back to the pool
    assert (await stats(client, tokens, YOUTH))["consents_missing"] == 0
    r = await client.post(url(adult, "/withdraw"), json={}, headers=leader)
    assert r.status == 200, await r.text()
    assert (await r.json())["outcome"] == "returned"
    audit = await audit_clean(client, tokens, 200)
    assert (audit["assigned"], audit["pool"]) == (0, 200 - 3 + 2)
