"""Signed anchors: every chain's head, tied together and signed, so truncating or rewriting a
chain up to its last anchor shows (docs/architecture.md, "Audit log").

Each round (a background task per worker, every ``audit.anchor_interval_s``; or ``guichet
audit anchor``) reads each chain's records after its last anchored head, extends the chain's
SHA-256 accumulator over them, signs the claims (``export.AnchorClaims``) with the newest
Ed25519 key of ``audit.signing_key_dir`` and appends the anchor with ``anchor.lua``, which
refuses it when another signer appended first (with several workers, one wins). Nothing is
signed when no chain moved, nor over a chain that no longer continues its anchored head (an
error is logged: that is tampering, for ``guichet audit verify`` to pin down).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Literal

import jwt
import msgspec
from aiohttp import web

from guichet import metrics
from guichet.audit import chains
from guichet.audit.export import AnchorClaims, Head, anchor_hash
from guichet.audit.notes import ANCHOR
from guichet.audit.record import ANCHOR_GENESIS, accumulate, record_hash
from guichet.background import Periodic
from guichet.config import AuditConfig
from guichet.signing import Keyring, Signer
from guichet.store.client import Store
from guichet.store.keys import AUDIT_ANCHORS

log = logging.getLogger("guichet.audit")

#: Audit keys stay published for good: an anchor must verify as long as the log is kept.
FOREVER_S = 100 * 365 * 86400
Result = Literal["appended", "stale", "unchanged"]
KEYRING = web.AppKey("audit_keyring", Keyring)


class ChainBroken(Exception):
    """A chain does not continue its anchored head (records removed or rewritten)."""


def keyring(cfg: AuditConfig) -> Keyring:
    """The audit signing keys (every key kept and published)."""
    return keyring_at(cfg.signing_key_dir)


def keyring_at(directory: str | os.PathLike[str]) -> Keyring:
    return Keyring(directory, max_ttl_s=FOREVER_S)


def claims_of(jws: str) -> AnchorClaims:
    """The claims of one of our own anchors, unverified (the signer reads its last one)."""
    return msgspec.json.decode(jwt.api_jws.decode(jws, options={"verify_signature": False}),
                               type=AnchorClaims)  # fmt: skip


async def redis_time_us(store: Store) -> int:
    seconds, micros = await store.client.time()
    return int(seconds) * 1_000_000 + int(micros)


async def sign_once(store: Store, signer: Signer) -> Result:
    """One anchor round: appended, stale (another signer appended first) or unchanged."""
    client = store.client
    last = await chains.latest_anchor(client)
    heads: dict[str, Head] = dict(claims_of(last.jws).heads) if last else {}
    cursors = dict(last.cursors) if last else {}
    tags = await chains.tags(client)
    missing = sorted(set(heads) - set(tags))
    if missing:
        raise ChainBroken(f"anchored chains are gone: {', '.join(missing)}")
    moved = False
    families = Counter({family: 0 for family in metrics.AUDIT_FAMILIES})
    for tag in tags:
        head = heads.get(tag)
        seq, prev_hash, acc = (head.seq, head.hash, head.acc) if head else (0, "", ANCHOR_GENESIS)
        cursor = cursors.get(tag, "")
        # the length, read in one command with the count of entries ever added: a chain only
        # grows, so fewer entries than were added is a deletion (before the cursor too); the
        # round anchors the first `length` records, those appended meanwhile wait for the next
        length, added = await chains.length(client, tag)
        if added != length or length < seq:
            raise ChainBroken(f"chain {tag}: {length} records of {added} added (anchored {seq})")
        if length > seq:
            async for entry_id, record in chains.entries(client, tag, cursor):
                if record.seq != seq + 1 or (seq and record.prev != prev_hash):
                    raise ChainBroken(f"chain {tag}: seq {record.seq} does not follow {seq}")
                if record_hash(record) != record.hash:
                    raise ChainBroken(f"chain {tag}: seq {record.seq} does not match its hash")
                seq, prev_hash = record.seq, record.hash
                acc, cursor = accumulate(acc, record), entry_id
                if seq == length:
                    break
        if seq != length:  # an entry gone while we read
            raise ChainBroken(f"chain {tag}: {length} records expected, {seq} read")
        families[metrics.audit_family(tag)] += seq
        if head is None or seq != head.seq:
            moved = True
            heads[tag], cursors[tag] = Head(seq=seq, hash=prev_hash, acc=acc), cursor
    for family, count in families.items():
        metrics.AUDIT_RECORDS.labels(family).set(count)
    if not moved:
        metrics.AUDIT_ANCHORS.labels("unchanged").inc()
        return "unchanged"
    claims = AnchorClaims(seq=(last.seq if last else 0) + 1, at=await redis_time_us(store),
                          prev=last.hash if last else ANCHOR_GENESIS,
                          heads=dict(sorted(heads.items())))  # fmt: skip
    jws = signer.sign(msgspec.to_builtins(claims))
    code, _ = await store.scripts(ANCHOR, [AUDIT_ANCHORS], [
        claims.prev, claims.seq, jws, anchor_hash(jws), signer.kid,
        msgspec.json.encode(cursors)])  # fmt: skip
    result: Result = "appended" if code == b"appended" or code == "appended" else "stale"
    metrics.AUDIT_ANCHORS.labels(result).inc()
    return result


async def refresh_age(store: Store, covered: bool) -> None:
    """``guichet_audit_anchor_age_seconds``: 0 while an anchor covers every chain's head, else
    the seconds since the latest anchor (Redis TIME; +Inf when there is none)."""
    if covered:
        metrics.AUDIT_ANCHOR_AGE.set(0)
        return
    last = await chains.latest_anchor(store.client)
    now = await redis_time_us(store)
    metrics.AUDIT_ANCHOR_AGE.set(math.inf if last is None else max(0, now - last.at) / 1e6)


async def round_(store: Store, ring: Keyring) -> None:
    """A background round: sign if a chain moved, then refresh the age gauge."""
    await asyncio.to_thread(ring.refresh)
    try:
        await sign_once(store, ring)
    except ChainBroken as exc:
        log.error("audit chain broken: no anchor signed", extra={"error": str(exc)})
        await refresh_age(store, covered=False)
    else:  # appended (by us, or by another signer just now: stale) or unchanged
        await refresh_age(store, covered=True)


def anchors_ctx(
    store_key: web.AppKey[Store], interval_s: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx running :func:`round_` every ``interval_s`` (none when 0)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if interval_s <= 0:
            yield
            return
        task = Periodic("audit anchors", interval_s, lambda: round_(app[store_key], app[KEYRING]))
        task.start()
        yield
        await task.stop()

    return ctx
