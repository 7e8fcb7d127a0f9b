"""Verify an audit export (``guichet audit verify``): pure, no Redis.

Checks, in order of the lines: per chain, seq 1..n contiguous, each ``prev`` the previous
record's hash (GENESIS first), each hash recomputed; then the anchors: each signature (EdDSA,
against the given JWKS or the export's keys line), each ``prev`` the SHA-256 of the previous
anchor, and every chain head an anchor names matches the records (seq, hash, SHA-256
accumulator) — so a record altered, removed, inserted or reordered anywhere up to the last
anchor, a chain cut after an anchored head, or a whole anchored chain removed, fails. Records
after the last anchor rest on their hash chain alone (``unanchored`` says how many).

What vouches for the export from outside it: ``jwks`` (the published keys, else the export's
own keys line, which a rewriter re-signing everything would replace) and ``anchor`` (a copy of
a published anchor, ``GET /v1/audit/anchor``, kept by an outsider): that very JWS must be among
the export's anchors and check out, so anchors dropped from the end, and records cut after
them, fail. ``Report.vouched`` says whether the outside vouches: only with both, the published
keys and a kept anchor (with the export's own keys, a rewriter keeps the outsider's anchor and
re-signs later ones with a key added to the keys line; without a kept anchor, a log cut back to
an older anchor checks out). The header is unsigned: a
partial export (``"chains": [...]``, ``--chain``) fails unless ``partial=True`` asks for one,
and then no record may belong to a chain it does not name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from guichet.audit.export import (
    FORMAT_V,
    LINE,
    AnchorClaims,
    AnchorLine,
    ExportHeader,
    KeysLine,
    RecordLine,
    anchor_hash,
)
from guichet.audit.record import ANCHOR_GENESIS, GENESIS, accumulate, record_hash

KeysFrom = Literal["jwks-file", "export", "none"]
_CLAIMS = msgspec.json.Decoder(AnchorClaims)


class Problem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The first thing wrong: where (line, chain, seq, anchor) and what."""

    what: str
    line: int | None = None
    chain: str | None = None
    seq: int | None = None
    anchor: int | None = None


class Report(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    chains: int
    records: int
    anchors: int
    keys_from: KeysFrom
    #: the chains exported, when the export is partial (``--chain``); None: every chain
    scope: list[str] | None = None
    #: per chain, the records after the last anchor's head (resting on the hash chain alone)
    unanchored: dict[str, int] = msgspec.field(default_factory=dict)
    #: a published anchor (``anchor``) was given and is in the export
    anchor_given: bool = False
    #: something outside the export vouches for it: the published anchor, or the given JWKS
    #: checking at least one anchor (else the keys, if any, come from the export itself)
    vouched: bool = False
    problem: Problem | None = None


class Failed(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.what)
        self.problem = problem


@dataclass
class _Chain:
    hashes: list[str] = field(default_factory=list)  # index seq-1
    accs: list[str] = field(default_factory=list)


def public_keys(jwks: Any) -> dict[str, Ed25519PublicKey]:
    """kid → key of a JWKS (``{"keys": [...]}``) of Ed25519 keys; ValueError when malformed."""
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise ValueError('a JWKS is an object with a "keys" list')
    out: dict[str, Ed25519PublicKey] = {}
    for jwk in jwks["keys"]:
        if not isinstance(jwk, Mapping) or not isinstance(jwk.get("kid"), str):
            raise ValueError("every JWK names its kid")
        try:
            key = jwt.algorithms.OKPAlgorithm.from_jwk(json.dumps(dict(jwk)))
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"JWK {jwk['kid'][:40]!r} is not an Ed25519 key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"JWK {jwk['kid'][:40]!r} is not an Ed25519 public key")
        out[jwk["kid"]] = key
    return out


def _claims(jws: str, keys: Mapping[str, Ed25519PublicKey], where: dict[str, Any]) -> AnchorClaims:
    try:
        kid = jwt.get_unverified_header(jws).get("kid")
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise Failed(Problem(what=f"anchor is not a compact JWS: {exc}", **where)) from None
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise Failed(Problem(what=f"anchor signed by an unknown key {str(kid)[:60]!r}", **where))
    try:
        raw = jwt.api_jws.decode(jws, key, algorithms=["EdDSA"])
    except (jwt.PyJWTError, ValueError, TypeError):
        raise Failed(Problem(what="anchor signature does not verify", **where)) from None
    try:
        return _CLAIMS.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError is one
        raise Failed(Problem(what=f"anchor claims malformed: {exc}", **where)) from None


def verify(
    lines: Iterable[bytes], jwks: Any = None, *, partial: bool = False, anchor: str | None = None
) -> Report:
    """Verify an export given as lines (bytes, with or without their newline). ``jwks``: the
    public keys to check anchors against (else the export's keys line); ``partial``: accept
    an export of some chains only; ``anchor``: a published anchor's compact JWS that must be
    in the export."""
    chains: dict[str, _Chain] = {}
    anchors: list[tuple[int, str]] = []  # (line number, jws)
    export_keys: Any = None
    header: ExportHeader | None = None
    order: list[str] = []
    records = 0
    keys_from: KeysFrom = "jwks-file" if jwks is not None else "none"

    def report(problem: Problem | None, unanchored: dict[str, int] | None = None) -> Report:
        ok = problem is None
        # Both must come from outside: the keys (else a rewriter adds a key of their own to the
        # keys line and re-signs anchors after the one kept) and an anchor (else a log cut back
        # to an older anchor, with its later anchors dropped, still checks out).
        outside = anchor is not None and keys_from == "jwks-file" and bool(anchors)
        return Report(ok=ok, chains=len(chains), records=records, anchors=len(anchors),
                      keys_from=keys_from, scope=None if header is None else header.chains,
                      unanchored=unanchored or {}, problem=problem,
                      anchor_given=ok and anchor is not None, vouched=ok and outside)  # fmt: skip

    stage = 0  # 0 header, 1 records, 2 anchors, 3 keys
    try:
        for n, raw in enumerate(lines, start=1):
            text = raw.rstrip(b"\r\n")
            if not text.strip():
                continue
            try:
                item = LINE.decode(text)
            except msgspec.DecodeError as exc:
                raise Failed(Problem(what=f"malformed line: {exc}", line=n)) from None
            if isinstance(item, ExportHeader):
                if stage != 0:
                    raise Failed(Problem(what="the export header comes first, once", line=n))
                if item.v != FORMAT_V:
                    raise Failed(Problem(what=f"export format v{item.v} is not v1", line=n))
                if item.chains is not None and not partial:
                    raise Failed(Problem(what="a partial export (the header names its chains): "
                                              "verify it as one (--partial)", line=n))  # fmt: skip
                header, stage = item, 1
            elif stage == 0:
                raise Failed(Problem(what='the first line is the {"type":"export"} header',
                                     line=n))  # fmt: skip
            elif isinstance(item, RecordLine):
                if stage != 1:
                    raise Failed(Problem(what="a record after the anchors", line=n,
                                         chain=item.chain, seq=item.seq))  # fmt: skip
                records += 1
                if (
                    header is not None
                    and header.chains is not None
                    and (item.chain not in header.chains)
                ):
                    raise Failed(Problem(what="a record of a chain the header does not name",
                                         line=n, chain=item.chain, seq=item.seq))  # fmt: skip
                _record(chains, order, item, n)
            elif isinstance(item, AnchorLine):
                if stage > 2:
                    raise Failed(Problem(what="an anchor after the keys line", line=n))
                stage = 2
                anchors.append((n, item.jws))
            else:
                assert isinstance(item, KeysLine)
                if stage == 3:
                    raise Failed(Problem(what="a second keys line", line=n))
                stage, export_keys = 3, item.jwks
        if header is None:
            raise Failed(Problem(what="empty export: no header line"))
        if jwks is None and export_keys is not None:
            jwks, keys_from = export_keys, "export"
        keys: dict[str, Ed25519PublicKey] = {}
        if jwks is not None:
            try:
                keys = public_keys(jwks)
            except ValueError as exc:
                raise Failed(Problem(what=f"the public keys ({keys_from}): {exc}")) from None
        if anchors and not keys:
            raise Failed(Problem(what="anchors but no public keys to check them: pass --jwks "
                                      "FILE or export with the keys line"))  # fmt: skip
        heads = _anchors(chains, anchors, keys, header.chains)
        if anchor is not None and anchor.strip() not in {jws for _, jws in anchors}:
            raise Failed(Problem(what="the published anchor given is not in the export "
                                      "(anchors dropped, or the log cut before it)",
                                 anchor=_seq_of(anchor)))  # fmt: skip
    except Failed as failed:
        return report(failed.problem)
    unanchored = {c: len(ch.hashes) - heads.get(c, 0) for c, ch in chains.items()
                  if len(ch.hashes) > heads.get(c, 0)}  # fmt: skip
    return report(None, unanchored)


def _seq_of(jws: str) -> int | None:
    """The seq an anchor claims, unverified (to say which anchor is missing)."""
    try:
        seq = json.loads(jwt.api_jws.decode(jws.strip(), options={"verify_signature": False}))
        return seq["seq"] if isinstance(seq, dict) and type(seq.get("seq")) is int else None
    except (jwt.PyJWTError, ValueError, TypeError):
        return None


def _record(chains: dict[str, _Chain], order: list[str], r: RecordLine, n: int) -> None:
    where: dict[str, Any] = {"line": n, "chain": r.chain, "seq": r.seq}
    chain = chains.get(r.chain)
    if chain is None:
        chain = chains[r.chain] = _Chain()
        order.append(r.chain)
    elif order[-1] != r.chain:
        raise Failed(Problem(what="the chain's records are not together", **where))
    if r.v != 1:
        raise Failed(Problem(what=f"record version {r.v} is not 1", **where))
    expected = len(chain.hashes) + 1
    if r.seq != expected:
        raise Failed(Problem(what=f"seq {r.seq} where {expected} was due", **where))
    prev = chain.hashes[-1] if chain.hashes else GENESIS
    if r.prev != prev:
        raise Failed(Problem(what="prev is not the previous record's hash", **where))
    if record_hash(r) != r.hash:
        raise Failed(Problem(what="hash does not match the record", **where))
    chain.accs.append(accumulate(chain.accs[-1] if chain.accs else ANCHOR_GENESIS, r))
    chain.hashes.append(r.hash)


def _anchors(
    chains: dict[str, _Chain],
    anchors: list[tuple[int, str]],
    keys: Mapping[str, Ed25519PublicKey],
    scope: list[str] | None,
) -> dict[str, int]:
    """Check the anchors in order; the heads of the last one (chain → seq)."""
    prev, heads = ANCHOR_GENESIS, dict[str, int]()
    for i, (n, jws) in enumerate(anchors, start=1):
        where: dict[str, Any] = {"line": n, "anchor": i}
        claims = _claims(jws, keys, where)
        if claims.seq != i:
            raise Failed(Problem(what=f"anchor seq {claims.seq} where {i} was due", **where))
        if claims.prev != prev:
            raise Failed(Problem(what="anchor does not name the previous anchor", **where))
        for tag, head in claims.heads.items():
            if scope is not None and tag not in scope:
                continue
            at: dict[str, Any] = {**where, "chain": tag, "seq": head.seq}
            chain = chains.get(tag)
            if chain is None:
                raise Failed(Problem(what="an anchored chain is missing", **at))
            if head.seq < heads.get(tag, 0):
                raise Failed(Problem(what="an anchor's head went back", **at))
            if head.seq < 1 or len(chain.hashes) < head.seq:
                raise Failed(Problem(what=f"chain holds {len(chain.hashes)} records, anchored "
                                          f"at {head.seq}", **at))  # fmt: skip
            if chain.hashes[head.seq - 1] != head.hash or chain.accs[head.seq - 1] != head.acc:
                raise Failed(Problem(what="anchored head does not match the records", **at))
        for tag in heads:
            if tag not in claims.heads and (scope is None or tag in scope):
                raise Failed(Problem(what="a chain left the anchors", chain=tag, **where))
        heads = {t: h.seq for t, h in claims.heads.items() if scope is None or t in scope}
        prev = anchor_hash(jws)
    return heads
