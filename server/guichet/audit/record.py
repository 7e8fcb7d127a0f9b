"""The audit record's canonical form and hash: pure, the same as ``lua_include/audit.lua``.

A record is hashed as the concatenation of netstrings (``<len>:<bytes>,``, lengths in bytes)
of v, chain, seq, at, actor, action, object, digest, outcome, prev, so no field's content can
shift another's. SHA-1 is what Redis Lua offers (``redis.sha1hex``); the signed anchors add a
SHA-256 accumulator over every record (``accumulate``), so a chain up to its last anchor rests
on SHA-256.
"""

from __future__ import annotations

import hashlib

import msgspec

GENESIS = "0" * 40
ANCHOR_GENESIS = "0" * 64
FIELDS = ("v", "seq", "at", "actor", "action", "object", "digest", "outcome", "prev", "hash")


class Record(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One audit record, as exported (JSON line) and served (``GET /v1/admin/audit``)."""

    v: int
    chain: str  # the hash tag of the act's keys, e.g. "room:olympics", "taj:olympic", "audit"
    seq: int  # 1, 2, … in its chain
    at: int  # Redis TIME, µs since the epoch (the act's time)
    actor: str  # the token's subject, or "cli:<user>" for a command run by ops
    action: str  # e.g. "room.put", "programme.designate"
    object: str  # what the act concerns, never personal data
    digest: str  # HMAC-SHA-256 of the request under the audit digest key (hex)
    outcome: str  # the script's success code
    prev: str  # the previous record's hash (GENESIS for seq 1)
    hash: str  # SHA-1 of the canonical form


def netstring(text: str) -> bytes:
    raw = text.encode()
    return b"%d:%s," % (len(raw), raw)


def canonical(record: Record) -> bytes:
    """The bytes hashed into ``record.hash`` (the Lua fragment builds the same)."""
    parts = (str(record.v), record.chain, str(record.seq), str(record.at), record.actor,
             record.action, record.object, record.digest, record.outcome, record.prev)  # fmt: skip
    return b"".join(netstring(p) for p in parts)


def record_hash(record: Record) -> str:
    return hashlib.sha1(canonical(record), usedforsecurity=False).hexdigest()


def accumulate(acc: str, record: Record) -> str:
    """The SHA-256 accumulator after ``record`` (signed in anchors; ANCHOR_GENESIS before)."""
    return hashlib.sha256(bytes.fromhex(acc) + canonical(record) + record.hash.encode()).hexdigest()


def from_stream(chain: str, fields: dict[bytes, bytes] | dict[str, str]) -> Record:
    """A record from a stream entry's fields (bytes or str)."""
    get = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
           for k, v in fields.items()}  # fmt: skip
    return Record(v=int(get["v"]), chain=chain, seq=int(get["seq"]), at=int(get["at"]),
                  actor=get["actor"], action=get["action"], object=get["object"],
                  digest=get["digest"], outcome=get["outcome"], prev=get["prev"],
                  hash=get["hash"])  # fmt: skip
