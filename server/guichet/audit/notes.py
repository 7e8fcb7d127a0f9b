"""The generic audit note: one record for an act that is not itself a Redis write (a key file
rotated, a report issued), and the records counter every wiring slice bumps after a success.

An act that *is* a Redis write records itself in its own script (``lua_include/audit.lua``);
this module is for the others: ``await note(store.scripts, act, tag=AUDIT_TAG,
outcome="rotated")`` from the server, :func:`note_sync` from a command line.
"""

from __future__ import annotations

from guichet.audit.act import Act
from guichet.store import sync
from guichet.store.keys import AUDIT_TAG
from guichet.store.scripts import LuaScript, ScriptRegistry

NOTE = LuaScript("guichet.audit", "note.lua")
ANCHOR = LuaScript("guichet.audit", "anchor.lua")
SCRIPTS = (NOTE, ANCHOR)


def _outcome(outcome: str) -> str:
    if not outcome or not outcome.isascii() or not outcome.isprintable():
        raise ValueError(f"an outcome is a printable ASCII word, not {outcome!r}")
    return outcome


async def note(scripts: ScriptRegistry, act: Act, tag: str = AUDIT_TAG, *, outcome: str) -> int:
    """Write ``act``'s record in chain ``tag``; its seq."""
    seq = await scripts(NOTE, [Act.key(tag)], [_outcome(outcome), act.arg()])
    return int(seq)


def note_sync(client: sync.SyncClient, act: Act, tag: str = AUDIT_TAG, *, outcome: str) -> int:
    """:func:`note` for a command line (blocking client, ``store/sync.py``)."""
    seq = sync.call(client, NOTE, [Act.key(tag)], [_outcome(outcome), act.arg()])
    return int(seq)
