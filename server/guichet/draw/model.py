"""The draw's pure rules: commitment, ranking formula, digests, transcript, verification.

Everything here is deterministic and free of I/O so that anyone can re-run a draw from its
published transcript and the entry export (``guichet draw verify``), and so that it can be
property-tested.

**Ranking formula** (version ``guichet-draw-v1``), for draw ``D`` with secret seed ``S`` (32
bytes, committed to as ``sha256(S)`` before registration closes) and an optional public
beacon value ``B`` supplied by ops at the draw (bytes; empty when none):

    K        = SHA-256( "guichet-draw-v1" || 0x00 || UTF-8(D) || 0x00 || S || 0x00 || B )
    key(e)   = BLAKE2b-128( UTF-8(e), key = K )            for entry id e
    rank     = entries sorted by ( stratum position, key(e), UTF-8(e) )

Strata come in the order the draw lists them (e.g. ``club`` then ``general``): every entry of
an earlier stratum ranks before any entry of a later one. Keys compare as 16-byte big-endian
strings; ties of ``key`` (probability 2^-128) break by the id's bytes, so the order is total.
The draw id in ``K`` keeps two draws that share a seed from sharing an order.

**Digests** (lower-case hex SHA-256):

- entry set: for each stratum in the draw's order, the line ``UTF-8(stratum) 0x09 count 0x0A``
  then that stratum's ids sorted by their UTF-8 bytes, each as ``UTF-8(id) 0x0A``;
- ranking: over the ranked entries, each as ``UTF-8(id) 0x0A``, in rank order.

Account ids are printable (no tab, no newline), so both encodings are unambiguous.

**Wave sizing** (``wave_size``): see its docstring.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Sequence
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


def draw_key(draw: str, seed: bytes, beacon: bytes = b"") -> bytes:
    """``K``: the BLAKE2b key every entry is hashed with."""
    parts = (FORMULA.encode(), draw.encode(), seed, beacon)
    return hashlib.sha256(b"\x00".join(parts)).digest()


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
        decorated.append((position[stratum], ranker.key(entry_id), entry_id.encode(), stratum))
    decorated.sort()
    return [(stratum, entry_id.decode()) for _, _, entry_id, stratum in decorated]


def entry_set_digest(entries: Iterable[tuple[str, str]], strata: Sequence[str]) -> str:
    """Digest of the frozen entry set, whatever order the entries come in."""
    members: dict[str, list[bytes]] = {name: [] for name in strata}
    for stratum, entry_id in entries:
        if stratum not in members:
            raise ValueError(f"entry {entry_id!r}: unknown stratum {stratum!r}")
        members[stratum].append(entry_id.encode())
    h = hashlib.sha256()
    for name in strata:
        ids = sorted(members[name])
        h.update(f"{name}\t{len(ids)}\n".encode())
        for raw in ids:
            h.update(raw + b"\n")
    return h.hexdigest()


def ranking_digest(ranked_ids: Iterable[str]) -> str:
    """Digest of the ranking: the entry ids in rank order."""
    h = hashlib.sha256()
    for entry_id in ranked_ids:
        h.update(entry_id.encode() + b"\n")
    return h.hexdigest()


class Transcript(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything needed to re-run a draw, published once it has run.

    ``signature`` is a compact JWS (EdDSA, header ``kid`` naming a key of the draw JWKS,
    ``/.well-known/draw-jwks.json``, where every key that ever signed a transcript stays)
    whose payload is exactly ``{"draw": <draw id>, "transcript_sha256": <hex>}``, the hex
    being the SHA-256 of :meth:`unsigned`: the transcript as compact JSON (msgspec: no
    whitespace, fields in the order declared here, every field present) with ``signature``
    set to ``""``. So it covers every other field — a changed date or version is caught as
    well as a changed seed or digest — but not that the seed is the one committed to before
    the close: whoever holds the key can sign a re-made transcript with a new seed and its
    own commitment. ``verify --commitment`` (the hash published before the close) catches that.
    """

    draw: str
    formula: str = FORMULA
    commitment: str
    committed_at: str
    registration_closes_at: str
    seed: str  # hex, revealed at the draw
    beacon: str = ""  # hex of the public beacon value, "" when none
    strata: Annotated[list[str], Meta(max_length=16)]  # as DrawSpec.strata
    entries: int
    entries_by_stratum: dict[str, int]
    entry_set_digest: str
    ranking_digest: str
    ran_at: str
    software_version: str
    signature: str = ""

    def unsigned(self) -> bytes:
        """The canonical bytes the signature covers (every field but ``signature``)."""
        return msgspec.json.encode(msgspec.structs.replace(self, signature=""))


def wave_size(
    remaining_tickets: int,
    assigned: int,
    buyers: int,
    tickets_sold: int,
    *,
    prior_conversion: float = 0.5,
    prior_tickets_per_buyer: float = 6.0,
    safety: float = 1.1,
) -> int:
    """How many windows the next wave should open so that the remaining stock is likely sold.

    Rule: expected tickets per assigned window = conversion * tickets per buyer, where
    conversion = buyers / assigned and tickets per buyer = tickets sold / buyers, both taken
    from the earlier waves whose windows have ended (the shop's confirms record buyers and
    tickets per wave; with at least 100 buyers observed; before that the priors are used).
    Size = ceil(remaining / expected * safety). Nothing remaining: 0. (Our own design: the
    seed says only that windows are given to those drawn.)
    """
    if remaining_tickets <= 0:
        return 0
    if buyers >= 100 and assigned > 0:
        conversion = buyers / assigned
        per_buyer = tickets_sold / buyers
    else:
        conversion, per_buyer = prior_conversion, prior_tickets_per_buyer
    expected = max(conversion * per_buyer, 1e-6)
    return max(1, math.ceil(remaining_tickets / expected * safety - 1e-9))  # float noise


# --- wire types --------------------------------------------------------------------------------

DrawId = wire.Slug


Stratum = Annotated[str, Meta(pattern=wire.whole(r"[a-z][a-z0-9_-]{0,31}"))]
EntryStatus = Literal["registered", "not_selected_yet", "window_assigned"]
#: Where now stands against an account's purchase window (window_check.lua).
WindowState = Literal["open", "before", "after", "none"]


class DrawSpec(wire.Base, kw_only=True):
    """A draw as ops configure it."""

    registration_opens_at: wire.Instant
    registration_closes_at: wire.Instant
    strata: Annotated[list[Stratum], Meta(min_length=1, max_length=16)] = msgspec.field(
        default_factory=lambda: ["general"]
    )
    default_stratum: Stratum = "general"
    #: Strata that need membership (from the identity token's groups claim, or from the
    #: member list ops load with ``guichet draw members``); the others are open to anyone.
    #: Unset: every stratum but ``default_stratum`` (a priority group is never self-declared).
    restricted: Annotated[list[Stratum], Meta(max_length=16)] | None = None
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
        if self.restricted is None:
            self.restricted = [s for s in self.strata if s != self.default_stratum]
        if any(s not in self.strata for s in self.restricted):
            raise ValueError("`restricted` names a stratum not in `strata`")
        if self.default_stratum in self.restricted:
            raise ValueError("`restricted` cannot hold `default_stratum`: it must stay open")
        # kept in priority order: a member without a claim lands in the first one they are in
        self.restricted = [s for s in self.strata if s in self.restricted]

    def restricted_strata(self) -> list[str]:
        """The restricted strata in priority order (set by ``__post_init__``)."""
        return list(self.restricted or ())


class DrawDefinition(DrawSpec, kw_only=True):
    """A draw in the config file: its spec plus its id."""

    id: DrawId


class EntryRequest(wire.Base, kw_only=True):
    """A registration: explicit consent to the rules and to processing the account id."""

    #: must be true (checked in ``__post_init__``: a 422 naming the field); the schema says so
    accept_rules: Annotated[bool, Meta(extra_json_schema={"const": True})]
    accept_data_processing: Annotated[bool, Meta(extra_json_schema={"const": True})]
    stratum: Stratum | None = None

    def __post_init__(self) -> None:
        if not self.accept_rules:
            raise ValueError("`accept_rules` must be true to enter the draw")
        if not self.accept_data_processing:
            raise ValueError("`accept_data_processing` must be true to enter the draw")


class Window(wire.Reply, kw_only=True):
    """A purchase window: fixed once given, ``[starts_at, ends_at)``."""

    sale: str
    starts_at: str
    ends_at: str
    wave: int


class Entry(wire.Reply, kw_only=True):
    """An account's entry. ``registered`` until the draw runs; then ``not_selected_yet``
    until a wave gives it a window (``window_assigned``, with the window)."""

    draw: str
    account: str
    stratum: str
    status: EntryStatus
    registered_at: str
    window: Window | None = None
