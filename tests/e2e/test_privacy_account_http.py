"""The access export by account (issue 15, slice privacy): besides the sale, an account's
memberships of the draws' restricted strata and its data as a State programme group leader
(the group, the records naming it as the actor, the ticket notices addressed to it); an
unrelated account gets none of it; each export is recorded once."""

from __future__ import annotations

from typing import Any

import pytest

from guichet.store.client import Store
from guichet.store.keys import AUDIT_TAG, DRAWS_INDEX, DrawKeys, audit_chain
from tests.conftest import Client, Tokens
from tests.e2e.programme_helpers import declared  # noqa: F401 (the fixture)
from tests.e2e.test_privacy_http import ACCESS, P, dpo, setup
from tests.e2e.test_programme_flow_http import account, candidate

pytestmark = pytest.mark.usefixtures("declared")
LEAD = "acc-lead"  # the leader of g1 in test_privacy_http.setup


async def seed_members(store: Store, members: list[str]) -> None:
    """Draw d1 with a restricted stratum ``press`` listing ``members``, as ops load it, and a
    stratum ``club`` restricted earlier (named by ``strata`` only) that still lists them."""
    c, d = store.client, DrawKeys("d1")
    await c.sadd(DRAWS_INDEX, "d1")
    await c.hset(d.cfg, mapping={"strata": "press,club,general", "restricted": "press"})
    await c.sadd(d.members("press"), *members)
    await c.sadd(d.members("club"), members[0])


async def notes(store: Store) -> list[Any]:
    entries: Any = await store.client.xrange(audit_chain(AUDIT_TAG))
    return [f for _, f in entries if f[b"action"] == b"privacy.access"]


async def test_a_member_and_leader_gets_both_an_unrelated_account_none(
    client: Client, store: Store, tokens: Tokens
) -> None:
    await setup(client, tokens)  # g1 led by acc-lead, invited by the operator
    await seed_members(store, [LEAD, "acc-other-member"])
    lead = account(tokens, LEAD)
    group = f"/v1/programmes/{P}/groups/g1"
    r = await client.post(f"{group}/candidates", json=candidate(3, "l1"), headers=lead)
    assert r.status == 201, await r.text()
    registered = (await r.json())["pseudonym"]
    r = await client.put(f"{group}/mobility", json={"count": 2}, headers=lead)
    assert r.status == 200, await r.text()

    r = await client.post(ACCESS, json={"account": LEAD}, headers=dpo(tokens))
    assert r.status == 200, await r.text()
    a = (await r.json())["account"]
    assert a["account"] == LEAD
    assert [(m["draw"], m["stratum"]) for m in a["memberships"]] == [("d1", "press"),
                                                                    ("d1", "club")]  # fmt: skip
    [g] = a["groups"]
    assert (g["games"], g["programme"], g["group"], g["mobility_needs"]) == ("olympic", P,
                                                                             "g1", 2)  # fmt: skip
    assert g["by"] == f"account:{LEAD}"
    acts = {(x["record"], x["id"], x["field"]) for x in a["leader_acts"]}
    assert ("candidate", registered, "by") in acts
    assert ("group", "g1", "by") in acts
    assert all(x["programme"] == P and x["at"] for x in a["leader_acts"])
    assert "entries" not in a  # empty lists are left out of the reply
    assert len(await notes(store)) == 1  # the access recorded once, without the account
    assert LEAD.encode() not in repr(await notes(store)).encode()

    # an unrelated account: nothing of the member list nor of the leader; no record
    r = await client.post(ACCESS, json={"account": "acc-unrelated"}, headers=dpo(tokens))
    assert r.status == 404
    # another member of the stratum: its membership only, none of the leader's data
    r = await client.post(ACCESS, json={"account": "acc-other-member"}, headers=dpo(tokens))
    assert r.status == 200, await r.text()
    b = (await r.json())["account"]
    assert [(m["draw"], m["stratum"]) for m in b["memberships"]] == [("d1", "press")]
    assert not {"groups", "leader_acts", "notices"} & set(b)
    assert len(await notes(store)) == 2


async def test_a_leader_with_no_sale_data_is_found_by_its_group_alone(
    client: Client, store: Store, tokens: Tokens
) -> None:
    await setup(client, tokens)
    r = await client.post(ACCESS, json={"account": LEAD}, headers=dpo(tokens))
    assert r.status == 200, await r.text()
    a = (await r.json())["account"]
    [g] = a["groups"]
    assert (g["group"], g["mobility_needs"]) == ("g1", 0)
    assert g["by"] != f"account:{LEAD}"  # the operator invited it
    assert not {"memberships", "leader_acts"} & set(a)
    assert len(await notes(store)) == 1
