"""The draw's pure rules: commitment, ranking formula, digests, transcript, verification.

Everything here is deterministic and free of I/O so that anyone can re-run a draw from its
published transcript and the entry export (``guichet draw verify``), and so that it can be
property-tested.

**Ranking formula** (version ``guichet-draw-v1``), for a draw with secret seed ``S`` (32
bytes, committed to as ``sha256(S)`` before registration closes) and an optional public
beacon value ``B`` supplied by ops at the draw (bytes; empty when none):

    K        = SHA-256( "guichet-draw-v1" || 0x00 || S || 0x00 || B )
    key(e)   = BLAKE2b-128( UTF-8(e), key = K )            for entry id e
    rank     = entries sorted by ( stratum position, key(e), e )

Strata come in the order the draw lists them (e.g. ``club`` then ``general``): every entry of
an earlier stratum ranks before any entry of a later one. Ties of ``key`` (probability 2^-128)
break by entry id, so the order is total.

**Digests** (lower-case hex SHA-256):

- entry set: over the sorted entry ids, each as ``UTF-8(stratum) 0x09 UTF-8(id) 0x0A``,
  sorted by id;
- ranking: over the ranked entries, each as ``UTF-8(id) 0x0A``, in rank order.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from guichet import wire

FORMULA = "guichet-draw-v1"
SEED_BYTES = 32


def commitment(seed: bytes) -> str:
    """What is published before registration closes: ``sha256(seed)`` in hex."""
    if len(seed) != SEED_BYTES:
        raise ValueError(f"a draw seed is {SEED_BYTES} bytes")
    return hashlib.sha256(seed).hexdigest()


def opens_commitment(seed: bytes, published: str) -> bool:
    """Does ``seed`` match the commitment published before the close?"""
    return len(seed) == SEED_BYTES and hmac.compare_digest(commitment(seed), published.lower())


def draw_key(seed: bytes, beacon: bytes = b"") -> bytes:
    """``K``: the BLAKE2b key every entry is hashed with."""
    return hashlib.sha256(FORMULA.encode() + b"\x00" + seed + b"\x00" + beacon).digest()


class Ranker:
    """``key(e)`` for many ids: the keyed BLAKE2b state is built once and copied per id."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes) -> None:
        self._base = hashlib.blake2b(key=key, digest_size=16)

    def key(self, entry_id: str) -> bytes:
        h = self._base.copy()
        h.update(entry_id.encode())
        return h.digest()


def rank(
    entries: Iterable[tuple[str, str]], strata: Sequence[str], key: bytes
) -> list[tuple[str, str]]:
    """``(stratum, entry id)`` pairs in rank order (the formula in the module docstring)."""
    position = {name: i for i, name in enumerate(strata)}
    ranker = Ranker(key)
    decorated = []
    for stratum, entry_id in entries:
        if stratum not in position:
            raise ValueError(f"entry {entry_id!r}: unknown stratum {stratum!r}")
        decorated.append((position[stratum], ranker.key(entry_id), entry_id, stratum))
    decorated.sort()
    return [(stratum, entry_id) for _, _, entry_id, stratum in decorated]


def entry_set_digest(entries: Iterable[tuple[str, str]]) -> str:
    """Digest of the frozen entry set, whatever order the entries come in."""
    h = hashlib.sha256()
    for stratum, entry_id in sorted(entries, key=lambda e: e[1]):
        h.update(stratum.encode() + b"\t" + entry_id.encode() + b"\n")
    return h.hexdigest()


def ranking_digest(ranked_ids: Iterable[str]) -> str:
    """Digest of the ranking: the entry ids in rank order."""
    h = hashlib.sha256()
    for entry_id in ranked_ids:
        h.update(entry_id.encode() + b"\n")
    return h.hexdigest()


class Transcript(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything needed to re-run a draw, published once it has run."""

    draw: str
    formula: str = FORMULA
    commitment: str
    committed_at: str
    seed: str  # hex, revealed at the draw
    beacon: str = ""  # hex of the public beacon value, "" when none
    strata: list[str]
    entries: int
    entry_set_digest: str
    ranking_digest: str
    ran_at: str
    software_version: str


def verify(transcript: Transcript, entries: Sequence[tuple[str, str]]) -> list[str]:
    """Recompute the draw from ``transcript`` and the exported ``entries``; returns every
    mismatch found (empty: the draw verifies)."""
    problems: list[str] = []
    if transcript.formula != FORMULA:
        problems.append(f"formula {transcript.formula!r} is not {FORMULA!r}")
        return problems
    try:
        seed = bytes.fromhex(transcript.seed)
        beacon = bytes.fromhex(transcript.beacon)
    except ValueError:
        return ["seed or beacon is not hex"]
    if not opens_commitment(seed, transcript.commitment):
        problems.append("the revealed seed does not match the published commitment")
    if len(entries) != transcript.entries:
        problems.append(f"{len(entries)} entries exported, transcript says {transcript.entries}")
    if entry_set_digest(entries) != transcript.entry_set_digest:
        problems.append("entry-set digest differs: the exported entries are not the frozen set")
    try:
        ranked = rank(entries, transcript.strata, draw_key(seed, beacon))
    except ValueError as exc:
        problems.append(str(exc))
        return problems
    if ranking_digest(entry_id for _, entry_id in ranked) != transcript.ranking_digest:
        problems.append("ranking digest differs: re-running the draw gives another order")
    return problems


# --- wire types --------------------------------------------------------------------------------

DrawId = wire.Slug
valid_draw_id = wire.valid_slug


Stratum = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
EntryStatus = Literal["registered", "withdrawn", "not_selected_yet", "window_assigned"]


class DrawSpec(wire.Base, kw_only=True):
    """A draw as ops configure it."""

    registration_opens_at: datetime
    registration_closes_at: datetime
    strata: Annotated[list[Stratum], Meta(min_length=1, max_length=16)] = msgspec.field(
        default_factory=lambda: ["general"]
    )
    default_stratum: Stratum = "general"
    window_s: Annotated[int, Meta(ge=3600, le=30 * 86_400)] = 48 * 3600
    notice_s: Annotated[int, Meta(ge=0, le=30 * 86_400)] = 2 * 86_400
    sale: DrawId | None = None
    phase: Literal["packs", "singles"] = "packs"

    def __post_init__(self) -> None:
        for name in ("registration_opens_at", "registration_closes_at"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"`{name}` needs a UTC offset (RFC 3339), e.g. ...Z")
        if self.registration_closes_at <= self.registration_opens_at:
            raise ValueError("`registration_closes_at` must be after `registration_opens_at`")
        if len(set(self.strata)) != len(self.strata):
            raise ValueError("`strata` lists a stratum twice")
        if self.default_stratum not in self.strata:
            raise ValueError("`default_stratum` must be one of `strata`")


class EntryRequest(wire.Base, kw_only=True):
    """A registration: explicit consent to the rules and to processing the account id."""

    accept_rules: bool
    accept_data_processing: bool
    stratum: Stratum | None = None

    def __post_init__(self) -> None:
        if not self.accept_rules:
            raise ValueError("`accept_rules` must be true to enter the draw")
        if not self.accept_data_processing:
            raise ValueError("`accept_data_processing` must be true to enter the draw")


class Entry(wire.Reply, kw_only=True):
    draw: str
    account: str
    stratum: str
    status: EntryStatus
    registered_at: str
