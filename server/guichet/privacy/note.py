"""A note in the audit chain ``{audit}`` for an act no single script performs (the sale side of
an access export reads several slots). One function, swapped for the audit-core slice's
``guichet.audit.notes.note`` at merge."""

from __future__ import annotations

from guichet.audit.act import Act
from guichet.store.client import Store
from guichet.store.keys import AUDIT_TAG
from guichet.store.scripts import LuaScript

NOTE = LuaScript("guichet.privacy", "privacy_note.lua")
SCRIPTS = (NOTE,)


async def note(store: Store, act: Act, outcome: str = "read") -> int:
    """Append ``act``'s record to the ``{audit}`` chain: its sequence number."""
    return int(await store.scripts(NOTE, [Act.key(AUDIT_TAG)], [outcome, act.arg()]))
