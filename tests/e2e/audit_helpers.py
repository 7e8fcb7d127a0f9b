"""Counting audit records across every chain (the route walks: a record in the wrong chain
shows as a difference here)."""

from __future__ import annotations

from guichet.audit import chains
from guichet.store.client import Store
from guichet.store.keys import audit_chain


async def total_records(store: Store) -> int:
    """Records in every audit chain (every primary, on a Cluster too)."""
    tags = await chains.tags(store.client)
    return sum([int(await store.client.xlen(audit_chain(t))) for t in tags])
