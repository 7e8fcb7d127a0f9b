"""The export format of the audit log (JSON lines) and the signed anchor's claims: pure.

An export (``guichet audit export``) is one JSON object per line:

1. ``{"type":"export","v":1,"chains":null}`` — the header; ``chains`` is null for a whole
   export, else the list of chains exported (``--chain``): anchored chains outside it are not
   checked, and verify says so;
2. ``{"type":"record", ...Record}`` for every record, grouped by chain, each chain by seq;
3. ``{"type":"anchor","jws":"<compact JWS>"}`` for every anchor, oldest first;
4. optionally ``{"type":"keys","jwks":{"keys":[...]}}``, the public keys of the anchors.

An anchor's claims (:class:`AnchorClaims`): its ``seq`` (1, 2, …), ``at`` (Redis TIME, µs),
``prev`` (the SHA-256 of the previous anchor's compact JWS, 64 zeros for the first) and
``heads``: for every chain, the anchored record's seq, its SHA-1 hash and the SHA-256
accumulator over the chain's records 1..seq (``record.accumulate``).
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from guichet.audit.record import Record

FORMAT_V = 1


class ExportHeader(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True,
                   tag_field="type", tag="export"):  # fmt: skip
    v: int
    chains: list[str] | None = None


class RecordLine(Record, frozen=True, tag_field="type", tag="record"):
    """A record, as one export line."""


class AnchorLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True,
                 tag_field="type", tag="anchor"):  # fmt: skip
    jws: str


class KeysLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True,
               tag_field="type", tag="keys"):  # fmt: skip
    jwks: dict[str, Any]


Line = ExportHeader | RecordLine | AnchorLine | KeysLine
LINE = msgspec.json.Decoder(Line)
_ENCODER = msgspec.json.Encoder()


class Head(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A chain's head as an anchor signs it."""

    seq: int
    hash: str  # the record's SHA-1 hash
    acc: str  # SHA-256 accumulator over the chain's records 1..seq


class AnchorClaims(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    seq: int
    at: int  # Redis TIME, µs since the epoch
    prev: str  # SHA-256 (hex) of the previous anchor's compact JWS; ANCHOR_GENESIS first
    heads: dict[str, Head]


def anchor_hash(jws: str) -> str:
    """What the next anchor names as its ``prev``."""
    return hashlib.sha256(jws.encode()).hexdigest()


def record_line(record: Record) -> bytes:
    return _ENCODER.encode(RecordLine(**msgspec.structs.asdict(record))) + b"\n"


def line(value: ExportHeader | AnchorLine | KeysLine) -> bytes:
    return _ENCODER.encode(value) + b"\n"
