"""The audit log over HTTP (public anchor and keys; admin reading with paging, scope, 401, 422,
404), the anchors' background round, and the CLI's export → verify round trip."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from guichet import cli
from guichet.audit import anchors, notes
from guichet.audit.act import Act
from guichet.audit.verify import verify
from guichet.config import Settings
from guichet.store.client import Store
from guichet.store.keys import AUDIT_ANCHORS, AUDIT_TAG, audit_chain
from tests.conftest import Client, Tokens, settings_file

ACT = Act(actor="admin:test", action="room.put", object="room:r1", digest="ab" * 32)


async def write(store: Store, n: int, tag: str = "room:r1") -> None:
    for _ in range(n):
        await notes.note(store.scripts, ACT, tag, outcome="put")


async def test_reading_needs_the_audit_scope(client: Client, tokens: Tokens) -> None:
    assert (await client.get("/v1/admin/audit")).status == 401
    wrong = {"Authorization": f"Bearer {tokens.admin('rooms:read')}"}
    for path in ("/v1/admin/audit", "/v1/admin/audit/room:r1"):
        response = await client.get(path, headers=wrong)
        assert response.status == 403
        assert response.content_type == "application/problem+json"


async def test_chains_are_listed_and_paged(client: Client, tokens: Tokens, store: Store) -> None:
    await write(store, 5)
    await write(store, 1, AUDIT_TAG)
    admin = {"Authorization": f"Bearer {tokens.admin('audit:read')}"}
    overview = await (await client.get("/v1/admin/audit", headers=admin)).json()
    assert [(c["chain"], c["length"], c["head_seq"]) for c in overview["chains"]] == [
        ("audit", 1, 1), ("room:r1", 5, 5)]  # fmt: skip
    assert "anchor" not in overview
    seen: list[int] = []
    after: int | None = 0
    while after is not None:
        page = await client.get(f"/v1/admin/audit/room:r1?after={after}&limit=2", headers=admin)
        assert page.status == 200
        body = await page.json()
        seen += [r["seq"] for r in body["records"]]
        after = body.get("next")
    assert seen == [1, 2, 3, 4, 5]
    default = await (await client.get("/v1/admin/audit/room:r1", headers=admin)).json()
    assert len(default["records"]) == 5
    assert default["records"][0]["prev"] == "0" * 40


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("after=-1", "after"),
        ("after=x", "after"),
        ("limit=%EF%BC%91", "limit"),
    ],
)
async def test_a_bad_query_is_a_422_naming_the_field(
    client: Client, tokens: Tokens, store: Store, query: str, field: str
) -> None:
    await write(store, 1)
    admin = {"Authorization": f"Bearer {tokens.admin('audit:read')}"}
    response = await client.get(f"/v1/admin/audit/room:r1?{query}", headers=admin)
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    assert [e["field"] for e in (await response.json())["errors"]] == [field]


async def test_an_unknown_chain_is_a_404(client: Client, tokens: Tokens) -> None:
    admin = {"Authorization": f"Bearer {tokens.admin('audit:read')}"}
    for chain in ("room:nope", "a%7Bb"):
        response = await client.get(f"/v1/admin/audit/{chain}", headers=admin)
        assert response.status == 404


async def test_the_public_anchor_verifies_with_the_public_keys(
    client: Client, tokens: Tokens, store: Store, settings: Settings
) -> None:
    assert (await client.get("/v1/audit/anchor")).status == 404
    await write(store, 2)
    ring = await asyncio.to_thread(anchors.keyring, settings.audit)
    assert await anchors.sign_once(store, ring) == "appended"
    anchor = await (await client.get("/v1/audit/anchor")).json()
    jwks = await (await client.get("/v1/audit/keys")).json()
    assert anchor["seq"] == 1
    assert anchor["kid"] in [k["kid"] for k in jwks["keys"]]
    assert anchor["at"].endswith("Z")
    lines = [b'{"type":"export","v":1}']
    admin = {"Authorization": f"Bearer {tokens.admin('audit:read')}"}
    page = await (await client.get("/v1/admin/audit/room:r1", headers=admin)).json()
    lines += [json.dumps({"type": "record", **r}).encode() for r in page["records"]]
    lines.append(json.dumps({"type": "anchor", "jws": anchor["jws"]}).encode())
    report = verify(lines, jwks)
    assert report.ok, report.problem
    assert report.keys_from == "jwks-file"


async def guichet(settings: Settings, tmp_path: Path, *args: str) -> int:
    config = settings_file(settings, tmp_path / "guichet.toml")
    return await asyncio.to_thread(cli.main, ["--config", str(config), *args])


async def test_cli_export_verify_round_trip_and_a_deleted_entry(
    store: Store, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await write(store, 3)
    await write(store, 2, "draw:d1")
    assert await guichet(settings, tmp_path, "audit", "anchor") == 0
    assert "anchor signed" in capsys.readouterr().out
    assert await guichet(settings, tmp_path, "audit", "anchor") == 0
    assert "none signed" in capsys.readouterr().out
    await write(store, 1)  # after the last anchor
    out = tmp_path / "audit.jsonl"
    assert await guichet(settings, tmp_path, "audit", "export", "--out", str(out)) == 0
    assert await guichet(settings, tmp_path, "audit", "verify", str(out)) == 0
    said = capsys.readouterr().out
    assert "2 chains (every chain), 6 records, 1 anchors" in said
    assert "the export's keys line" in said
    assert "room:r1 1" in said  # one record after the last anchor
    assert "WARNING: nothing outside the export vouches for it" in said
    assert await guichet(settings, tmp_path, "audit", "verify", "--strict", str(out)) == 1
    capsys.readouterr()
    one = tmp_path / "room.jsonl"
    assert (
        await guichet(
            settings, tmp_path, "audit", "export", "--chain", "room:r1", "--out", str(one)
        )
        == 0
    )
    assert await guichet(settings, tmp_path, "audit", "verify", str(one)) == 1
    assert "verify it as one (--partial)" in capsys.readouterr().err
    assert await guichet(settings, tmp_path, "audit", "verify", "--partial", str(one)) == 0
    assert "chains room:r1" in capsys.readouterr().out

    entries: Any = await store.client.xrange(audit_chain("room:r1"))
    await store.client.xdel(audit_chain("room:r1"), entries[0][0])
    assert await guichet(settings, tmp_path, "audit", "export", "--out", str(out)) == 0
    assert await guichet(settings, tmp_path, "audit", "verify", str(out)) == 1
    err = capsys.readouterr().err
    assert "FAILED: seq 2 where 1 was due" in err
    assert "chain room:r1" in err


async def test_cli_verify_of_a_malformed_file_names_the_line(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"type":"export","v":1}\n\xff\xfe not json\n')
    assert await guichet(settings, tmp_path, "audit", "verify", str(bad)) == 1
    err = capsys.readouterr().err
    assert "FAILED: malformed line" in err
    assert "line 2" in err
    assert "Traceback" not in err
    assert await guichet(settings, tmp_path, "audit", "verify", str(tmp_path / "none")) == 1


async def test_cli_verify_with_a_published_anchor(
    client: Client, store: Store, settings: Settings, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    await write(store, 2)
    assert await guichet(settings, tmp_path, "audit", "anchor") == 0
    kept = tmp_path / "anchor.json"  # what an outsider kept
    kept.write_bytes(await (await client.get("/v1/audit/anchor")).read())
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(await (await client.get("/v1/audit/keys")).read())
    await write(store, 1)
    out = tmp_path / "audit.jsonl"
    assert await guichet(settings, tmp_path, "audit", "export", "--out", str(out)) == 0
    capsys.readouterr()
    # one of the two alone does not vouch (--strict: exit 1); both do
    for extra in (["--anchor", str(kept)], ["--jwks", str(jwks)]):
        assert await guichet(settings, tmp_path, "audit", "verify", "--strict", *extra,
                             str(out)) == 1  # fmt: skip
        said = capsys.readouterr().out
        assert "WARNING: nothing outside" in said
        assert ("the published anchor given is in it" in said) is (extra[0] == "--anchor")
    assert await guichet(settings, tmp_path, "audit", "verify", "--strict", "--anchor", str(kept),
                         "--jwks", str(jwks), str(out)) == 0  # fmt: skip
    said = capsys.readouterr().out
    assert "WARNING" not in said
    assert "the published anchor given is in it" in said
    bare = tmp_path / "anchor.jws"  # the bare compact JWS is accepted too
    bare.write_text(json.loads(kept.read_bytes())["jws"] + "\n")
    assert await guichet(settings, tmp_path, "audit", "verify", "--anchor", str(bare),
                         str(out)) == 0  # fmt: skip
    assert "the published anchor given is in it" in capsys.readouterr().out

    # the log rolled back to before the anchor: its anchor and the records after it gone
    await store.client.delete(AUDIT_ANCHORS)
    entries: Any = await store.client.xrange(audit_chain("room:r1"))
    await store.client.xdel(audit_chain("room:r1"), *[e[0] for e in entries[1:]])
    assert await guichet(settings, tmp_path, "audit", "export", "--out", str(out)) == 0
    assert await guichet(settings, tmp_path, "audit", "verify", str(out)) == 0  # alone: passes
    assert "WARNING: nothing outside" in capsys.readouterr().out
    assert await guichet(settings, tmp_path, "audit", "verify", "--anchor", str(kept),
                         str(out)) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "FAILED: the published anchor given is not in the export" in err
    assert "anchor 1" in err
    (tmp_path / "junk").write_text("not an anchor")
    assert await guichet(settings, tmp_path, "audit", "verify", "--anchor",
                         str(tmp_path / "junk"), str(out)) == 1  # fmt: skip
    assert "not an anchor" in capsys.readouterr().err
