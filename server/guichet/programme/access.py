"""Acts of access to a beneficiary's data (an operator reads a candidate, a ticket, the export
of reuse consents): the read and its audit record in one script (``access.lua``), after the
agent's declaration check."""

from __future__ import annotations

from guichet.programme.acting import Acting, run
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys
from guichet.store.scripts import LuaScript

ACCESS = LuaScript("guichet.programme", "access.lua")
SCRIPTS = (ACCESS,)


async def read(
    store: Store, k: ProgrammeKeys, key: str, field: str, acting: Acting, *, programme: str,
    person_field: str = "", pseudonyms: tuple[str, ...] = (),
) -> bytes | None:  # fmt: skip
    """``HGET key field`` recorded as an access (None, and no record, when absent); with
    ``field`` '' the access is recorded and nothing read (an export that streams)."""
    code, value = await run(store, ACCESS, k, [key], [field, person_field], acting,
                            programme=programme, pseudonyms=pseudonyms)  # fmt: skip
    return bytes(value) if code == b"ok" else None
