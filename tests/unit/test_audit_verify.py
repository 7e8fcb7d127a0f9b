"""``guichet audit verify`` on exports built in Python (record.py): an untouched export passes;
any record altered, removed, inserted or moved, a tail cut after an anchor, or an anchor
changed, fails; arbitrary bytes give a report naming the line, never a traceback."""

from __future__ import annotations

import json
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from guichet.audit import export
from guichet.audit.record import ANCHOR_GENESIS, GENESIS, Record, accumulate, record_hash
from guichet.audit.verify import verify
from guichet.auth import public_jwk

KEY = Ed25519PrivateKey.generate()
JWK = public_jwk(KEY)
OTHER = Ed25519PrivateKey.generate()
JWKS = {"keys": [JWK]}

text = st.text(st.characters(codec="utf-8"), max_size=12)
acts = st.lists(st.tuples(text, text, text, text), min_size=1, max_size=5)
chain_sets = st.dictionaries(st.sampled_from(["room:a", "draw:b", "audit", "taj:c:d"]), acts,
                             min_size=1, max_size=3)  # fmt: skip


def chain_records(tag: str, items: list[tuple[str, str, str, str]]) -> list[Record]:
    out: list[Record] = []
    prev = GENESIS
    for i, (actor, action, obj, outcome) in enumerate(items, start=1):
        r = Record(v=1, chain=tag, seq=i, at=1_700_000_000_000_000 + i, actor=actor,
                   action=action, object=obj, digest="d" * 64, outcome=outcome, prev=prev,
                   hash="")  # fmt: skip
        r = msgspec.structs.replace(r, hash=record_hash(r))
        out.append(r)
        prev = r.hash
    return out


def sign(claims: dict[str, Any], key: Ed25519PrivateKey = KEY) -> str:
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": JWK["kid"]})


def anchor_over(chains: dict[str, list[Record]], upto: dict[str, int], seq: int, prev: str) -> str:
    heads = {}
    for tag, n in upto.items():
        acc = ANCHOR_GENESIS
        for r in chains[tag][:n]:
            acc = accumulate(acc, r)
        heads[tag] = {"seq": n, "hash": chains[tag][n - 1].hash, "acc": acc}
    return sign({"seq": seq, "at": 1_800_000_000_000_000, "prev": prev, "heads": heads})


def build(spec: dict[str, list[tuple[str, str, str, str]]], keys: bool = True) -> list[bytes]:
    """An export: every chain, an anchor at half of each chain, then one over everything."""
    chains = {tag: chain_records(tag, items) for tag, items in sorted(spec.items())}
    first = anchor_over(chains, {t: max(1, len(rs) // 2) for t, rs in chains.items()}, 1,
                        ANCHOR_GENESIS)  # fmt: skip
    second = anchor_over(chains, {t: len(rs) for t, rs in chains.items()}, 2,
                         export.anchor_hash(first))  # fmt: skip
    lines = [export.line(export.ExportHeader(v=1))]
    lines += [export.record_line(r) for rs in chains.values() for r in rs]
    lines += [export.line(export.AnchorLine(jws=first)), export.line(export.AnchorLine(jws=second))]
    if keys:
        lines.append(export.line(export.KeysLine(jwks=JWKS)))
    return lines


def record_lines(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.startswith(b'{"type":"record"')]


@given(chain_sets)
@settings(max_examples=40, deadline=None)
def test_an_untouched_export_verifies(spec: dict[str, list[tuple[str, str, str, str]]]) -> None:
    report = verify(build(spec))
    assert report.ok, report.problem
    assert report.records == sum(len(v) for v in spec.values())
    assert (report.anchors, report.keys_from, report.unanchored) == (2, "export", {})
    assert verify(build(spec, keys=False), JWKS).keys_from == "jwks-file"


FIELDS = ("v", "chain", "seq", "at", "actor", "action", "object", "digest", "outcome", "prev",
          "hash")  # fmt: skip


@given(chain_sets, st.data())
@settings(max_examples=80, deadline=None)
def test_any_field_altered_fails(spec: dict[str, list[tuple[str, str, str, str]]],
                                 data: st.DataObject) -> None:  # fmt: skip
    lines = build(spec)
    i = data.draw(st.sampled_from(record_lines(lines)))
    obj = json.loads(lines[i])
    name = data.draw(st.sampled_from(FIELDS))
    old = obj[name]
    new = data.draw(st.integers(0, 2**40) if isinstance(old, int) else text)
    if new == old:
        new = old + 1 if isinstance(old, int) else old + "x"
    obj[name] = new
    lines[i] = json.dumps(obj).encode()
    report = verify(lines)
    assert not report.ok
    assert report.problem is not None


@given(chain_sets, st.data())
@settings(max_examples=60, deadline=None)
def test_a_record_deleted_inserted_or_moved_fails(
    spec: dict[str, list[tuple[str, str, str, str]]], data: st.DataObject
) -> None:
    """Each chain is verified on its own: records of different chains may interleave in any
    order, so a move is one that changes a chain's own order (two of its records swapped, or
    one of them moved behind the chain's last)."""
    lines = build(spec)
    rows = record_lines(lines)
    i = data.draw(st.sampled_from(rows))
    same_chain = [r for r in rows if json.loads(lines[r])["chain"] == json.loads(lines[i])["chain"]]
    how = data.draw(st.sampled_from(["delete", "duplicate", "swap", "to-end"]))
    if how == "delete":
        del lines[i]
    elif how == "duplicate":
        lines.insert(data.draw(st.sampled_from(rows)), lines[i])
    elif how == "swap":
        j = data.draw(st.sampled_from(same_chain))
        if lines[i] == lines[j] or i == j:
            del lines[i]
        else:
            lines[i], lines[j] = lines[j], lines[i]
    elif i != same_chain[-1]:
        lines.insert(rows[-1] + 1, lines.pop(i))  # behind every record, its chain's last too
    else:
        lines.pop(i)
    assert not verify(lines).ok


@given(chain_sets, st.data())
@settings(max_examples=40, deadline=None)
def test_a_tail_or_a_chain_cut_after_an_anchor_fails(
    spec: dict[str, list[tuple[str, str, str, str]]], data: st.DataObject
) -> None:
    lines = build(spec)
    tag = data.draw(st.sampled_from(sorted(spec)))
    mine = [i for i in record_lines(lines) if json.loads(lines[i])["chain"] == tag]
    cut = data.draw(st.integers(1, len(mine)))  # the last `cut` records of the chain
    for i in reversed(mine[-cut:]):
        del lines[i]
    report = verify(lines)
    assert not report.ok
    assert report.problem is not None
    assert report.problem.chain == tag


@given(chain_sets, st.sampled_from(["forged", "tampered", "dropped", "swapped", "other-key"]))
@settings(max_examples=40, deadline=None)
def test_an_anchor_changed_fails(spec: dict[str, list[tuple[str, str, str, str]]],
                                 how: str) -> None:  # fmt: skip
    lines = build(spec)
    first, second = (i for i, line in enumerate(lines) if line.startswith(b'{"type":"anchor"'))
    jws = json.loads(lines[first])["jws"]
    head, payload, sig = jws.split(".")
    if how == "forged":
        flipped = "A" if sig[-3] != "A" else "B"
        jws = f"{head}.{payload}.{sig[:-3]}{flipped}{sig[-2:]}"
    elif how == "tampered":
        claims = jwt.api_jws.decode(jws, options={"verify_signature": False})
        altered = jwt.utils.base64url_encode(claims.replace(b'"seq":1', b'"seq":3')).decode()
        jws = f"{head}.{altered}.{sig}"
    elif how == "other-key":
        jws = sign(json.loads(jwt.api_jws.decode(jws, options={"verify_signature": False})), OTHER)
    if how == "dropped":
        del lines[first]
    elif how == "swapped":
        lines[first], lines[second] = lines[second], lines[first]
    else:
        lines[first] = export.line(export.AnchorLine(jws=jws))
    report = verify(lines)
    assert not report.ok
    assert report.problem is not None
    assert report.problem.anchor is not None


def test_anchors_without_keys_fail_and_say_so() -> None:
    report = verify(build({"room:a": [("a", "b", "c", "d")]}, keys=False))
    assert report.problem is not None
    assert "no public keys" in report.problem.what


@given(st.lists(st.binary(max_size=200), max_size=6))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_give_a_report(lines: list[bytes]) -> None:
    report = verify(lines)
    assert report.ok is (report.problem is None)
    if not report.ok:
        assert report.problem is not None
        assert report.problem.what


json_values = st.recursive(st.none() | st.booleans() | st.integers() | text,
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3),
                           max_leaves=8)  # fmt: skip


LINE_TYPES = st.sampled_from(["export", "record", "anchor", "keys"])
OPTIONAL = {name: json_values for name in ("v", "chains", "jws", "jwks", "seq", "chain")}


@given(
    st.lists(st.fixed_dictionaries({"type": LINE_TYPES}, optional=OPTIONAL), max_size=5),
    st.one_of(st.none(), json_values),
)
@settings(max_examples=300, deadline=None)
def test_arbitrary_json_lines_and_jwks_give_a_report(
    lines: list[dict[str, Any]], jwks: Any
) -> None:
    for partial, anchor in ((False, None), (True, "a.b.c")):
        report = verify([json.dumps(line).encode() for line in lines], jwks, partial=partial,
                        anchor=anchor)  # fmt: skip
        if not report.ok:
            assert report.problem is not None


def relinked(lines: list[bytes], tag: str, actor: str) -> list[bytes]:
    """``lines`` with chain ``tag``'s first record rewritten (another actor) and every later
    record of the chain re-hashed, so the chain links up again (only anchors can tell)."""
    out, prev = [], GENESIS
    for line in lines:
        obj = json.loads(line)
        if obj["type"] == "record" and obj["chain"] == tag:
            if obj["seq"] == 1:
                obj["actor"] = actor
            obj["prev"] = prev
            r = msgspec.convert({k: v for k, v in obj.items() if k != "type"}, Record)
            obj["hash"] = prev = record_hash(r)
            line = json.dumps(obj).encode()
        out.append(line)
    return out


@given(chain_sets, st.data())
@settings(max_examples=30, deadline=None)
def test_a_header_naming_chains_fails_unless_partial_is_asked(
    spec: dict[str, list[tuple[str, str, str, str]]], data: st.DataObject
) -> None:
    tag = data.draw(st.sampled_from(sorted(spec)))
    lines = relinked(build(spec), tag, "someone-else")
    assert not verify(lines).ok  # the anchors tell
    scope = data.draw(st.lists(st.sampled_from([*sorted(spec), "room:z"]), unique=True))
    lines[0] = export.line(export.ExportHeader(v=1, chains=scope))
    report = verify(lines, JWKS)
    assert report.problem is not None
    assert "--partial" in report.problem.what
    report = verify(lines, JWKS, partial=True)  # the edited chain is in scope, or unnamed
    assert report.problem is not None
    assert report.problem.chain == tag or "does not name" in report.problem.what
    untouched = build(spec)
    untouched[0] = export.line(export.ExportHeader(v=1, chains=scope))
    assert not verify(untouched).ok
    assert verify(untouched, partial=True).ok is (set(spec) <= set(scope))


def test_a_partial_export_of_one_chain_verifies_when_asked() -> None:
    spec = {"room:a": [("a", "b", "c", "d")] * 3, "draw:b": [("a", "b", "c", "d")] * 2}
    lines = build(spec)
    only = [line for line in lines if b'"chain":"draw:b"' not in line]
    only[0] = export.line(export.ExportHeader(v=1, chains=["room:a"]))
    report = verify(only, partial=True)
    assert report.ok, report.problem
    assert (report.scope, report.records) == (["room:a"], 3)


def anchor_lines(lines: list[bytes]) -> list[int]:
    return [i for i, line in enumerate(lines) if line.startswith(b'{"type":"anchor"')]


@given(chain_sets, st.data())
@settings(max_examples=30, deadline=None)
def test_anchors_stripped_fail_when_a_published_anchor_is_given(
    spec: dict[str, list[tuple[str, str, str, str]]], data: st.DataObject
) -> None:
    lines = build(spec)
    published = [json.loads(lines[i])["jws"] for i in anchor_lines(lines)]
    kept = data.draw(st.sampled_from(published))
    report = verify(lines, anchor=kept)
    assert report.ok, report.problem
    # the export's own keys: a rewriter could add one and re-sign the anchors after the kept one
    assert (report.anchor_given, report.vouched, report.keys_from) == (True, False, "export")
    assert verify(build(spec, keys=False), JWKS, anchor=kept).vouched
    assert verify(lines, anchor=kept + "\n").ok  # as read from a file
    # drop the kept anchor (and maybe the ones after, or every one), maybe cut records after
    first = published.index(kept)
    drop = data.draw(st.sampled_from(["it and after", "every one"]))
    gone = anchor_lines(lines)[first if drop == "it and after" else 0 :]
    stripped = [line for i, line in enumerate(lines) if i not in gone]
    cut = data.draw(st.booleans())
    if cut:  # and the last record of a chain (still anchored by an earlier anchor, maybe)
        tag = data.draw(st.sampled_from(sorted(spec)))
        mine = [i for i in record_lines(stripped) if json.loads(stripped[i])["chain"] == tag]
        del stripped[mine[-1]]
    else:
        assert verify(stripped).ok  # alone, nothing tells
    report = verify(stripped, anchor=kept)
    assert not report.ok
    assert report.problem is not None
    if not cut:
        assert report.problem.what.startswith("the published anchor given is not in the export")
        assert report.problem.anchor == first + 1
    # another anchor than the kept one, or one re-signed with another key, does not count
    forged = sign(json.loads(jwt.api_jws.decode(kept, options={"verify_signature": False})),
                  OTHER)  # fmt: skip
    assert not verify(lines, anchor=forged).ok


@given(chain_sets)
@settings(max_examples=20, deadline=None)
def test_only_outside_keys_and_a_published_anchor_vouch(
    spec: dict[str, list[tuple[str, str, str, str]]],
) -> None:
    lines = build(spec)
    assert not verify(lines).vouched  # the export's own keys line
    unkeyed = build(spec, keys=False)
    assert not verify(unkeyed, JWKS).vouched  # no kept anchor: a log cut back would pass too
    latest = json.loads(unkeyed[anchor_lines(unkeyed)[-1]])["jws"]
    assert verify(unkeyed, JWKS, anchor=latest).vouched
    bare = [line for i, line in enumerate(lines) if i not in anchor_lines(lines)]
    report = verify(bare, JWKS)  # no anchor left to check against the JWKS
    assert report.ok, report.problem
    assert not report.vouched
