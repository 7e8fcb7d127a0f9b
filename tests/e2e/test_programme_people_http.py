"""The State programme's beneficiaries over HTTP on a real Valkey: registration by operators
and group leaders, one registration per person and programme, consent and guardian consent,
reuse consent and its export, mobility counts per group, the purge of names."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from guichet import auth, cli
from guichet.config import Settings
from guichet.programme import identity
from guichet.programme.acting import internal
from guichet.programme.people import decode_candidate
from guichet.programme.people_service import People
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys, audit_chain
from tests.conftest import Backend, Client, Tokens, make_settings, metric_value, settings_file
from tests.e2e.programme_helpers import declared  # noqa: F401 (the fixture)
from tests.programme_seed_b import (
    CRITERIA,
    NAME_KEY_HEX,
    PROGRAMME_SETTINGS,
    SECRET_HEX,
    seed_programme,
    set_retention,
    value,
)

pytestmark = pytest.mark.usefixtures("declared")

P = "youth-75"
FAMILY = "Quintavalle-Zorbaz"
GIVEN = "Zéphyrine Anastasie"


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(tmp_path, backend.redis_section, programme=PROGRAMME_SETTINGS)


def operator(tokens: Tokens, *programmes: str) -> dict[str, str]:
    token = auth.mint(
        tokens.key, issuer=tokens.sec.issuer, audience=tokens.sec.admin_audience,
        subject="op-1", ttl_s=600, scopes=["programme:operate"], programmes=list(programmes),
    )  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


def central(tokens: Tokens) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.admin('programme:central')}"}


def account(tokens: Tokens, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.account(name)}"}


def candidate(
    family: str = FAMILY, given: str = GIVEN, birth: str = "2001-03-04", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "family_name": family, "given_names": given, "birth_date": birth, "lottery": "main",
        "criteria": list(CRITERIA),
        "consent": {"version": "charte-v1", "collected_at": "2024-02-01T10:00:00Z",
                    "collected_by": "mission-locale-75"},
    }  # fmt: skip
    body.update(extra)
    return body


async def register(client: Client, tokens: Tokens, body: dict[str, Any]) -> Any:
    return await client.post(f"/v1/admin/programmes/{P}/candidates", json=body,
                             headers=operator(tokens, P))  # fmt: skip


async def counted(client: Client, name: str, **labels: str) -> float:
    """A counter's value now (the registry is the process's: tests compare before and after)."""
    return metric_value(await (await client.get("/metrics")).text(), name, **labels)


async def test_an_operator_registers_a_candidate_and_gets_its_pseudonym_never_the_name(
    client: Client, tokens: Tokens, store: Store
) -> None:
    k = await seed_programme(store, P)
    before = await counted(client, "guichet_programme_candidates_registered_total", programme=P)
    resp = await register(client, tokens, candidate(reuse_consent={"version": "reuse-v1"}))
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    person = identity.pseudonym(bytes.fromhex(SECRET_HEX), FAMILY, GIVEN, date(2001, 3, 4))
    assert body["pseudonym"] == person
    assert (body["minor"], body["guardian_consent"], body["reuse_consent"]) == (
        False, "not-needed", True)  # fmt: skip
    text = await resp.text()
    for needle in ("Quintavalle", "phyrine", "2001-03-04"):
        assert needle not in text
    raw = await value(store, k.candidates(P), person)
    assert b"Quintavalle" not in raw
    assert b"2001-03-04" not in raw
    record = decode_candidate(raw)
    assert record.majority_on == "2019-03-04"
    assert (record.state, record.consent.version, record.by) == ("candidate", "charte-v1", "op-1")
    assert record.name is not None
    box = identity.NameBox(bytes.fromhex(NAME_KEY_HEX))
    assert box.open("olympic", person, record.name) == f"{GIVEN} {FAMILY}"
    stats = await store.client.hgetall(k.stats(P))
    assert (stats[b"candidates"], stats[b"eligible"]) == (b"1", b"1")
    shown = await client.get(f"/v1/admin/programmes/{P}/candidates/{person}",
                             headers=operator(tokens, P))  # fmt: skip
    assert shown.status == 200
    view = await shown.json()
    assert (view["name_held"], view["reuse_consent"]) == (True, "reuse-v1")
    assert "name" not in view
    after = await counted(client, "guichet_programme_candidates_registered_total", programme=P)
    assert after - before == 1


async def test_an_operator_of_another_programme_is_refused(
    client: Client, tokens: Tokens, store: Store
) -> None:
    k = await seed_programme(store, P)
    await seed_programme(store, "volunteers-1")
    resp = await client.post(f"/v1/admin/programmes/{P}/candidates", json=candidate(),
                             headers=operator(tokens, "volunteers-1"))  # fmt: skip
    assert resp.status == 403
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["type"].endswith("not-your-programme")
    assert await store.client.hlen(k.candidates(P)) == 0


async def test_the_same_person_twice_in_one_programme_is_refused_spelling_variants_too(
    client: Client, tokens: Tokens, store: Store
) -> None:
    k = await seed_programme(store, P)
    await seed_programme(store, "agents-1")
    refusals = "guichet_programme_registration_refusals_total"
    before = await counted(client, refusals, reason="already_registered")
    assert (await register(client, tokens, candidate())).status == 201
    variant = candidate(family="  quintavalle zorbaz", given="ZEPHYRINE-anastasie")
    resp = await register(client, tokens, variant)
    assert resp.status == 409
    assert (await resp.json())["type"].endswith("already-registered")
    assert await store.client.hlen(k.candidates(P)) == 1
    # another programme may register the person (the double benefit is refused at tickets)
    other = await client.post("/v1/admin/programmes/agents-1/candidates", json=variant,
                              headers=operator(tokens, "agents-1"))  # fmt: skip
    assert other.status == 201
    assert await counted(client, refusals, reason="already_registered") - before == 1


async def test_fifty_concurrent_registrations_of_one_person_make_exactly_one(
    client: Client, tokens: Tokens, store: Store
) -> None:
    k = await seed_programme(store, P)
    answers = await asyncio.gather(*(register(client, tokens, candidate()) for _ in range(50)))
    statuses = sorted(r.status for r in answers)
    assert statuses == [201] + [409] * 49
    assert await store.client.hlen(k.candidates(P)) == 1
    assert await store.client.hget(k.stats(P), "candidates") == b"1"


async def test_a_minor_is_flagged_and_needs_a_guardian_consent_recorded_once(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await seed_programme(store, P)  # the lottery's session is on 2024-08-02
    resp = await register(client, tokens, candidate(birth="2006-08-03"))  # 18 the day after
    body = await resp.json()
    assert (body["minor"], body["guardian_consent"]) == (True, "missing")
    person = body["pseudonym"]
    adult = await (
        await register(client, tokens, candidate(given="Léon", birth="2006-08-02"))
    ).json()
    assert (adult["minor"], adult["guardian_consent"]) == (False, "not-needed")
    url = f"/v1/admin/programmes/{P}/candidates/{person}/guardian"
    given = {
        "name": "Gaspard Tuteur",
        "relationship": "parent",
        "consented_at": "2024-02-02T09:00:00+01:00",
    }
    resp = await client.put(url, json=given, headers=operator(tokens, P))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["guardian"] is True
    again = await client.put(url, json=given, headers=operator(tokens, P))
    assert again.status == 409
    assert (await again.json())["type"].endswith("guardian-recorded")
    uncle = {
        "name": "Gaspard Tuteur",
        "relationship": "uncle",
        "consented_at": "2024-02-02T09:00:00Z",
    }
    bad = await client.put(url, json=uncle, headers=operator(tokens, P))
    assert bad.status == 422
    assert (await bad.json())["errors"][0]["field"] == "relationship"
    with_guardian = candidate(given="Ana", birth="2010-01-01",
                              guardian={"name": "Gaspard Tuteur", "relationship": "legal-guardian",
                                        "consented_at": "2024-01-01T00:00:00Z"})  # fmt: skip
    body = await (await register(client, tokens, with_guardian)).json()
    assert (body["minor"], body["guardian_consent"]) == (True, "given")
    # who consented is kept, sealed like the printed name and bound to the minor
    box = identity.NameBox(bytes.fromhex(NAME_KEY_HEX))
    k = ProgrammeKeys("olympic")
    for minor in (person, body["pseudonym"]):
        raw = await value(store, k.candidates(P), minor)
        assert b"Gaspard" not in raw
        assert b"Tuteur" not in raw
        sealed = decode_candidate(raw).guardian
        assert sealed is not None
        assert sealed.sealed_name is not None
        assert box.open("olympic", f"{minor}/guardian", sealed.sealed_name) == "Gaspard Tuteur"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"consent": None}, "consent"),
        ({"eye_colour": "green"}, "eye_colour"),
        ({"criteria": ["age-16-25"]}, "criteria"),
        ({"family_name": " - "}, "family_name"),
        ({"birth_date": "2999-01-01"}, "birth_date"),
        ({"lottery": "other"}, "lottery"),
        ({"group": "nowhere"}, "group"),
        ({"consent": {"version": "v1", "collected_at": "2024-02-01T10:00:00Z"}},
         "consent.collected_by"),
    ],
)  # fmt: skip
async def test_a_bad_registration_is_a_422_naming_the_field_and_stores_nothing(
    client: Client, tokens: Tokens, store: Store, change: dict[str, Any], field: str
) -> None:
    k = await seed_programme(store, P)
    body = candidate()
    body.update(change)
    if change.get("consent", 1) is None:
        del body["consent"]
    resp = await register(client, tokens, body)
    assert resp.status == 422, await resp.text()
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert field in [e["field"] for e in problem["errors"]], problem
    assert await store.client.hlen(k.candidates(P)) == 0
    assert await store.client.hget(k.stats(P), "candidates") is None


async def test_a_closed_lottery_or_an_unknown_programme_refuses(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await seed_programme(store, P, lottery_state="run")
    resp = await register(client, tokens, candidate())
    assert resp.status == 409
    assert (await resp.json())["type"].endswith("lottery-closed")
    resp = await client.post("/v1/admin/programmes/nope/candidates", json=candidate(),
                             headers=operator(tokens, "nope"))  # fmt: skip
    assert resp.status == 404


async def test_leaders_register_candidates_of_their_own_group_only(
    client: Client, tokens: Tokens, store: Store
) -> None:
    k = await seed_programme(store, P)
    op = operator(tokens, P)
    for group, leader in (("club-a", "leader-a"), ("club-b", "leader-b")):
        resp = await client.post(f"/v1/admin/programmes/{P}/groups",
                                 json={"id": group, "leader": leader}, headers=op)  # fmt: skip
        assert resp.status == 201, await resp.text()
        assert (await resp.json())["leader"] == leader
    again = await client.post(f"/v1/admin/programmes/{P}/groups",
                              json={"id": "club-a", "leader": "leader-a"}, headers=op)  # fmt: skip
    assert again.status == 200
    busy = await client.post(f"/v1/admin/programmes/{P}/groups",
                             json={"id": "club-c", "leader": "leader-a"}, headers=op)  # fmt: skip
    assert busy.status == 409
    url = f"/v1/programmes/{P}/groups/club-a/candidates"
    refused = await client.post(url, json=candidate(), headers=account(tokens, "leader-b"))
    assert refused.status == 403
    assert (await refused.json())["type"].endswith("not-your-group")
    stranger = await client.post(url, json=candidate(), headers=account(tokens, "someone"))
    assert stranger.status == 403
    resp = await client.post(url, json=candidate(), headers=account(tokens, "leader-a"))
    assert resp.status == 201, await resp.text()
    person = (await resp.json())["pseudonym"]
    record = decode_candidate(await value(store, k.candidates(P), person))
    assert (record.group, record.by) == ("club-a", "account:leader-a")
    other = await client.post(url, json=candidate(given="Paul", group="club-b"),
                              headers=account(tokens, "leader-a"))  # fmt: skip
    assert other.status == 422
    # the guardian consent of a group's candidate, by its leader only
    guardian = {
        "name": "Gaspard Tuteur",
        "relationship": "parent",
        "consented_at": "2024-02-02T09:00:00Z",
    }
    g_url = f"/v1/programmes/{P}/groups/club-b/candidates/{person}/guardian"
    assert (
        await client.put(g_url, json=guardian, headers=account(tokens, "leader-b"))
    ).status == 403
    g_url = f"/v1/programmes/{P}/groups/club-a/candidates/{person}/guardian"
    resp = await client.put(g_url, json=guardian, headers=account(tokens, "leader-a"))
    assert resp.status == 200, await resp.text()
    record = decode_candidate(await value(store, k.candidates(P), person))
    assert record.guardian is not None
    assert record.guardian.by == "account:leader-a"


async def test_mobility_needs_are_one_count_per_group_set_by_its_leader_or_the_operator(
    client: Client, tokens: Tokens, store: Store
) -> None:
    k = await seed_programme(store, P)
    op = operator(tokens, P)
    await client.post(f"/v1/admin/programmes/{P}/groups", json={"id": "club-a",
                      "leader": "leader-a"}, headers=op)  # fmt: skip
    url = f"/v1/programmes/{P}/groups/club-a/mobility"
    resp = await client.put(url, json={"count": 3}, headers=account(tokens, "leader-a"))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["mobility_needs"] == 3
    assert (await client.put(url, json={"count": 1},
                             headers=account(tokens, "leader-b"))).status == 403  # fmt: skip
    assert (await client.put(url, json={"count": -1},
                             headers=account(tokens, "leader-a"))).status == 422  # fmt: skip
    resp = await client.put(f"/v1/admin/programmes/{P}/groups/club-a/mobility",
                            json={"count": 5}, headers=op)  # fmt: skip
    assert resp.status == 200
    group = json.loads(await value(store, k.groups(P), "club-a"))
    assert (group["leader"], group["mobility_needs"], group["by"]) == ("leader-a", 5, "op-1")
    missing = await client.put(f"/v1/admin/programmes/{P}/groups/nope/mobility",
                               json={"count": 5}, headers=op)  # fmt: skip
    assert missing.status == 404


async def test_reuse_consent_is_given_revoked_and_only_consenting_pseudonyms_are_exported(
    client: Client, tokens: Tokens, store: Store
) -> None:
    await seed_programme(store, P)
    op = operator(tokens, P)
    people = []
    for i, given in enumerate(("Anne", "Bruno", "Chloé")):
        extra: dict[str, Any] = {"reuse_consent": {"version": "reuse-v1"}} if i < 2 else {}
        body = await (await register(client, tokens, candidate(given=given, **extra))).json()
        people.append(body["pseudonym"])
    url = f"/v1/admin/programmes/{P}/candidates/{{}}/reuse-consent"
    assert (await client.delete(url.format(people[0]), headers=op)).status == 200  # objects
    assert (await client.delete(url.format(people[0]), headers=op)).status == 200  # idempotent
    resp = await client.put(url.format(people[2]), json={"version": "reuse-v2"}, headers=op)
    assert resp.status == 200
    export = await client.get(f"/v1/admin/programmes/{P}/reuse-consents", headers=op)
    assert export.status == 200
    body = await export.json()
    assert body["count"] == 2
    assert {(c["pseudonym"], c["version"]) for c in body["candidates"]} == {
        (people[1], "reuse-v1"), (people[2], "reuse-v2")}  # fmt: skip
    other = await client.get(f"/v1/admin/programmes/{P}/reuse-consents",
                             headers=operator(tokens, "other"))  # fmt: skip
    assert other.status == 403


async def _every_value(store: Store) -> list[bytes]:
    """Every key name and every value of every key of Redis (all nodes of a Cluster)."""
    found: list[bytes] = []
    r: Any = store.client
    async for key in r.scan_iter(count=1000):
        found.append(key)
        kind = (await r.type(key)).decode()
        if kind == "string":
            found.append(await r.get(key))
        elif kind == "hash":
            for f, v in (await r.hgetall(key)).items():
                found += [f, v]
        elif kind == "list":
            found += await r.lrange(key, 0, -1)
        elif kind == "set":
            found += list(await r.smembers(key))
        elif kind == "zset":
            found += await r.zrange(key, 0, -1)
        elif kind == "stream":
            for _, fields in await r.xrange(key):
                for f, v in fields.items():
                    found += [f, v]
        else:
            raise AssertionError(f"unexpected type {kind} of {key!r}")
    return found


async def purges(store: Store) -> list[str]:
    """The outcomes of the ``programme.purge`` records of the games' chain."""
    raw: Any = await store.client.xrange(audit_chain("taj:olympic"))
    return [f[b"outcome"].decode() for _, f in raw if f[b"action"] == b"programme.purge"]


async def test_purge_is_refused_before_the_retention_date_and_after_it_no_name_remains(
    client: Client, tokens: Tokens, store: Store, settings: Settings, tmp_path: Path
) -> None:
    k = await seed_programme(store, P)
    persons = []
    for i in range(30):
        guardian = {"name": "Gaspard Tuteur", "relationship": "parent",
                    "consented_at": "2024-01-01T00:00:00Z"}  # fmt: skip
        body = candidate(family=f"{FAMILY}{chr(65 + i)}", given=GIVEN, birth="2010-01-01",
                         guardian=guardian)  # fmt: skip
        resp = await register(client, tokens, body)
        assert resp.status == 201
        persons.append((await resp.json())["pseudonym"])
    early = await client.post(f"/v1/admin/programmes/{P}/purge", headers=central(tokens))
    assert early.status == 409
    assert (await early.json())["type"].endswith("retention-not-over")
    config = settings_file(settings, tmp_path / "ops.toml")
    argv = ["--config", str(config), "programme", "purge", P, "--batch", "7"]
    assert await asyncio.to_thread(cli.main, argv) == 1
    assert await store.client.hget(k.stats(P), "purged") is None
    await set_retention(store, P, "2024-09-30")
    # The purge's first batch alone (its caller then gone) has written the act's record.
    first = internal("service", "programme.purge", f"programme:{P}")
    after, _ = await People(store).purge_batch(P, "0", first, count=7)
    assert after != "0"  # more batches to come
    assert await purges(store) == ["started"]
    assert await asyncio.to_thread(cli.main, argv) == 0
    assert await store.client.hget(k.stats(P), "purged") == b"30"
    assert await purges(store) == ["started", "started"]  # the CLI's: a record, its batches none
    again = await client.post(f"/v1/admin/programmes/{P}/purge", headers=central(tokens))
    assert (again.status, (await again.json())["purged"]) == (200, 0)  # idempotent
    for person in persons:
        record = decode_candidate(await value(store, k.candidates(P), person))
        assert record.name is None
        assert record.guardian is not None
        assert record.guardian.sealed_name is None  # the guardian's name goes too
        assert (record.state, record.consent.version) == ("candidate", "charte-v1")
    needles = {identity.normalise(FAMILY).encode(), b"quintavalle", b"zephyrine", b"anastasie",
               "zéphyrine".encode(), b"2010-01-01", b"gaspard", b"tuteur"}  # fmt: skip
    values = await _every_value(store)
    assert len(values) > 60
    for stored in values:
        lowered = stored.lower()
        assert not any(n in lowered for n in needles), stored[:200]
    resp = await register(client, tokens, candidate(given="Late"))
    assert resp.status == 409  # no name can enter after the retention date
    assert (await resp.json())["type"].endswith("retention-over")
