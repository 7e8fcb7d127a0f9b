"""The programme's state-changing requests cost one Redis round trip each once the worker knows
the programme (its games cached, its spec as last seen checked by the script), counted at the
connection (tests/roundtrips.py: every command still goes to the real Valkey). The guardian and
reuse consent updates are two (the script answers the record, then compares and sets:
people_service.People._update says why)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from guichet.config import Settings
from guichet.programme import people_service
from guichet.store.client import Store
from tests.conftest import Backend, Client, Tokens, make_settings
from tests.e2e.programme_helpers import declared  # noqa: F401 (the fixture)
from tests.e2e.test_programme_people_http import FAMILY, P, account, candidate, central, operator
from tests.programme_seed_b import PROGRAMME_SETTINGS, seed_programme, set_retention, value
from tests.roundtrips import RoundTrips

pytestmark = [
    pytest.mark.inprocess("counts the app's own Redis calls"),
    pytest.mark.usefixtures("declared"),
]
REGISTER = ("people_register",)


@pytest.fixture
def settings(tmp_path: Path, backend: Backend) -> Settings:
    return make_settings(tmp_path, backend.redis_section, programme=PROGRAMME_SETTINGS)


@pytest.fixture
def trips() -> RoundTrips:
    return RoundTrips(people_service.SCRIPTS)


async def _register(client: Client, tokens: Tokens, body: dict[str, Any]) -> Any:
    return await client.post(f"/v1/admin/programmes/{P}/candidates", json=body,
                             headers=operator(tokens, P))  # fmt: skip


async def test_a_registration_is_one_round_trip_once_the_programme_is_known(
    client: Client, tokens: Tokens, store: Store, trips: RoundTrips
) -> None:
    await seed_programme(store, P)
    with trips.active():
        first = await _register(client, tokens, candidate(family=FAMILY + "A"))
        assert first.status == 201, await first.text()
        assert trips.trips[-2:] == [REGISTER, REGISTER]  # 'stale' with the spec, then created
        trips.clear()
        second = await _register(client, tokens, candidate(family=FAMILY + "B"))
        assert second.status == 201, await second.text()
        assert trips.trips == [REGISTER]
        body = await second.json()
        assert (body["minor"], body["guardian_consent"]) == (False, "not-needed")
        for bad, field in ((candidate(birth="2999-01-01"), "birth_date"),
                           (candidate(criteria=[]), "criteria"),
                           (candidate(family=FAMILY + "A"), None)):  # fmt: skip
            trips.clear()
            refused = await _register(client, tokens, bad)
            assert refused.status in (409, 422), await refused.text()
            if field is not None:
                assert (await refused.json())["errors"][0]["field"] == field
            assert trips.trips == [REGISTER]


async def test_a_spec_changed_behind_the_workers_back_is_seen_at_the_next_registration(
    client: Client, tokens: Tokens, store: Store, trips: RoundTrips
) -> None:
    k = await seed_programme(store, P)
    assert (await _register(client, tokens, candidate(family=FAMILY + "A"))).status == 201
    spec = json.loads(await value(store, k.programmes, P))
    spec["criteria"] = [*spec["criteria"], "new-rule"]
    await store.client.hset(k.programmes, P, json.dumps(spec))
    with trips.active():
        refused = await _register(client, tokens, candidate(family=FAMILY + "B"))
    assert refused.status == 422
    assert (await refused.json())["errors"][0]["field"] == "criteria"
    assert trips.trips == [REGISTER, REGISTER]
    await set_retention(store, P, "2000-01-01")
    allowed = candidate(family=FAMILY + "C", criteria=spec["criteria"])
    again = await _register(client, tokens, allowed)
    assert again.status == 409
    assert (await again.json())["type"].endswith("retention-over")


async def test_groups_mobility_and_purge_are_one_round_trip_consents_two(
    client: Client, tokens: Tokens, store: Store, trips: RoundTrips
) -> None:
    await seed_programme(store, P)
    registered = await _register(client, tokens, candidate(birth="2015-01-01"))
    person = (await registered.json())["pseudonym"]
    op = operator(tokens, P)
    with trips.active():
        trips.clear()
        group = {"id": "club-a", "leader": "leader-a"}
        invite = await client.post(f"/v1/admin/programmes/{P}/groups", json=group, headers=op)
        assert invite.status == 201
        assert trips.trips == [("people_group",)]
        trips.clear()
        leader = account(tokens, "leader-a")
        url = f"/v1/programmes/{P}/groups/club-a/mobility"
        mobility = await client.put(url, json={"count": 2}, headers=leader)
        assert mobility.status == 200
        assert trips.trips == [("people_mobility",)]
        trips.clear()
        guardian = await client.put(
            f"/v1/admin/programmes/{P}/candidates/{person}/guardian", headers=op,
            json={"name": "Gaspard Tuteur", "relationship": "parent",
                  "consented_at": "2024-02-01T10:00:00Z"},
        )  # fmt: skip
        assert guardian.status == 200, await guardian.text()
        assert trips.trips == [("people_update",)] * 2
        trips.clear()
        reuse = await client.put(f"/v1/admin/programmes/{P}/candidates/{person}/reuse-consent",
                                 json={"version": "reuse-v1"}, headers=op)  # fmt: skip
        assert reuse.status == 200
        assert trips.trips == [("people_update",)] * 2
        trips.clear()
        early = await client.post(f"/v1/admin/programmes/{P}/purge", headers=central(tokens))
        assert early.status == 409
        # the spec as seen by the worker's registration is current: the batch alone
        assert trips.trips == [("people_purge",)]
        await set_retention(store, P, "2000-01-01")
        trips.clear()
        purged = await client.post(f"/v1/admin/programmes/{P}/purge", headers=central(tokens))
        assert (purged.status, (await purged.json())["purged"]) == (200, 1)
        # stale: the spec read again, then the batch
        assert trips.trips == [("people_purge",), ("HGET",), ("people_purge",)]
