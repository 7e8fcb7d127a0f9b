"""Reading the audit chains and anchors from Redis (the admin routes, the export, the anchors).

A chain is a stream ``g:{<tag>}:audit`` (one per hash tag); found with SCAN on every primary
(redis-py's Cluster client scans them all). A record's seq is its position in the stream:
reading "after seq" walks the stream in batches (chains of administrative acts stay small).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from guichet.audit.record import Record, from_stream
from guichet.store.keys import AUDIT_ANCHORS, PREFIX, audit_chain, tag_of
from guichet.store.scripts import Client

PATTERN = f"{PREFIX}{{*}}:audit"
BATCH = 1000


class StoredAnchor(msgspec.Struct, frozen=True, kw_only=True):
    """An anchor as kept in the anchors stream."""

    id: str  # stream id
    seq: int
    at: int  # Redis TIME when appended, µs
    jws: str
    hash: str  # SHA-256 of jws
    kid: str
    cursors: dict[str, str]  # chain → stream id of its anchored head


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def tags(client: Client) -> list[str]:
    """Every chain's tag, sorted."""
    found = set()
    async for key in client.scan_iter(match=PATTERN, count=1000, _type="stream"):
        found.add(tag_of(_text(key)))
    return sorted(found)


async def entries(
    client: Client, tag: str, after_id: str = ""
) -> AsyncIterator[tuple[str, Record]]:
    """(stream id, record) of chain ``tag`` after ``after_id`` ('' = from the first)."""
    key, start = audit_chain(tag), ("(" + after_id) if after_id else "-"
    while True:
        batch: Any = await client.xrange(key, start, "+", count=BATCH)
        for raw_id, fields in batch:
            yield _text(raw_id), from_stream(tag, fields)
        if len(batch) < BATCH:
            return
        start = "(" + _text(batch[-1][0])


async def page(client: Client, tag: str, after: int, limit: int) -> tuple[list[Record], int | None]:
    """Up to ``limit`` records with seq > ``after``, and the seq to pass next (None: no more)."""
    out: list[Record] = []
    async for _, record in entries(client, tag):
        if record.seq <= after:
            continue
        if len(out) == limit:
            return out, out[-1].seq
        out.append(record)
    return out, None


async def head(client: Client, tag: str) -> tuple[int, Record | None]:
    """(number of records, the last record) of chain ``tag``; (0, None) when there is none."""
    key = audit_chain(tag)
    length = int(await client.xlen(key))
    last: Any = await client.xrevrange(key, "+", "-", count=1)
    return length, (from_stream(tag, last[0][1]) if last else None)


async def length(client: Client, tag: str) -> tuple[int, int]:
    """(entries now, entries ever added) of chain ``tag``, read together (``XINFO STREAM``);
    (0, 0) when there is none. A chain only grows: the two differ once an entry was deleted."""
    try:
        info: Any = await client.xinfo_stream(audit_chain(tag))
    except ResponseError as exc:  # no such key
        if "no such key" not in str(exc).lower():
            raise
        return 0, 0
    return int(info["length"]), int(info["entries-added"])


def _anchor(raw_id: Any, fields: dict[Any, Any]) -> StoredAnchor:
    get = {_text(k): _text(v) for k, v in fields.items()}
    return StoredAnchor(
        id=_text(raw_id),
        seq=int(get["seq"]),
        at=int(get["at"]),
        jws=get["jws"],
        hash=get["hash"],
        kid=get["kid"],
        cursors=msgspec.json.decode(get["cursors"], type=dict[str, str]),
    )


async def latest_anchor(client: Client) -> StoredAnchor | None:
    last: Any = await client.xrevrange(AUDIT_ANCHORS, "+", "-", count=1)
    return _anchor(*last[0]) if last else None


async def anchors(client: Client, upto: str = "+") -> AsyncIterator[StoredAnchor]:
    """Every anchor, oldest first (up to the stream id ``upto``, inclusive)."""
    start = "-"
    while True:
        batch: Any = await client.xrange(AUDIT_ANCHORS, start, upto, count=BATCH)
        for raw_id, fields in batch:
            yield _anchor(raw_id, fields)
        if len(batch) < BATCH:
            return
        start = "(" + _text(batch[-1][0])


async def export_lines(
    client: Client, jwks: dict[str, Any] | None, only: str | None = None
) -> AsyncIterator[bytes]:
    """The export (``export.py``): header, every record of every chain (or of ``only``), every
    anchor, and the keys line when ``jwks`` is given. The last anchor is found before the
    records are read, and the anchors exported stop there: an anchor signed during the export
    names no head past the records exported (those records are simply unanchored)."""
    from guichet.audit import export  # the format, pure

    last = await latest_anchor(client)
    selected = [only] if only is not None else await tags(client)
    yield export.line(
        export.ExportHeader(v=export.FORMAT_V, chains=None if only is None else selected)
    )
    for tag in selected:
        async for _, record in entries(client, tag):
            yield export.record_line(record)
    if last is not None:
        async for anchor in anchors(client, last.id):
            yield export.line(export.AnchorLine(jws=anchor.jws))
    if jwks is not None:
        yield export.line(export.KeysLine(jwks=jwks))
