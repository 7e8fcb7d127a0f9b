"""The audit records of key rotations (admission tokens, e-tickets): file acts, not Redis
writes, so they go through the audit core's generic note script in the ``audit`` chain.

Until the audit core's ``guichet.audit.notes`` is merged, the call is looked up at run time
and a missing module is reported (the rotation itself stands): fix at merge to a plain
``from guichet.audit import notes as audit_notes``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from guichet import opscli
from guichet.config import Settings
from guichet.room import acts
from guichet.store.keys import AUDIT_TAG

ADMISSION_KEYS = "keys:admission"  # objects: which key set was rotated (never a key itself)
ETICKET_KEYS = "keys:eticket"


def rotated(settings: Settings, action: str, object: str, path: Path) -> None:
    """Write the record of a rotation that added the key file ``path`` (actor ``cli:<user>``)."""
    act = acts.cli(settings, action, object, path.name.encode())
    try:
        audit_notes = importlib.import_module("guichet.audit.notes")
    except ModuleNotFoundError:  # before the audit core is merged (see the module docstring)
        print("guichet: audit notes unavailable: rotation not recorded", file=sys.stderr)
        return
    audit_notes.note_sync(opscli.sync_client(settings), act, AUDIT_TAG, "rotated")
