"""A note in the audit chain ``{audit}`` for an act no single script performs (the sale side of
an access export reads several slots): the audit log's generic note script."""

from __future__ import annotations

from guichet.audit import notes as audit_notes
from guichet.audit.act import Act
from guichet.store.client import Store
from guichet.store.keys import AUDIT_TAG

SCRIPTS = audit_notes.SCRIPTS


async def note(store: Store, act: Act, outcome: str = "read") -> int:
    """Append ``act``'s record to the ``{audit}`` chain: its sequence number."""
    return await audit_notes.note(store.scripts, act, AUDIT_TAG, outcome=outcome)
