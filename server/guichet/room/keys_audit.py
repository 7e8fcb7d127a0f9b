"""The audit records of key rotations (admission tokens, e-tickets): file acts, not Redis
writes, so they go through the audit core's generic note script in the ``audit`` chain.

The key file is written first, then its record: a rotation whose record fails (Redis down)
exits non-zero and says so, and the new key stands (re-running rotates again, recorded).
"""

from __future__ import annotations

from pathlib import Path

from guichet import opscli
from guichet.audit import acts
from guichet.audit import notes as audit_notes
from guichet.config import Settings
from guichet.store.keys import AUDIT_TAG

ADMISSION_KEYS = "keys:admission"  # objects: which key set was rotated (never a key itself)
ETICKET_KEYS = "keys:eticket"


def rotated(settings: Settings, action: str, object: str, path: Path) -> None:
    """Write the record of a rotation that added the key file ``path`` (actor ``cli:<user>``)."""
    act = acts.cli(settings, action, object, path.name.encode())
    audit_notes.note_sync(opscli.sync_client(settings), act, AUDIT_TAG, outcome="rotated")
