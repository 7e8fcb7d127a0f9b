"""What a caller hands the script that performs an act, so that it writes the act's record.

``Act(actor, action, object, digest)`` is encoded as one argument (netstrings), and the chain
key goes last in KEYS: ``script(S, [*keys, *act.keys(tag)], [*args, *act.args()])`` — the Lua
fragment ``lua_include/audit.lua`` pops both. The digest is an HMAC-SHA-256 of the request's
bytes under the audit digest key: it proves which request it was to whoever holds the key and
reveals nothing of it (a body may hold a name or a birth date: never personal data in the log).
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
from dataclasses import dataclass

from guichet.audit.record import netstring
from guichet.store.keys import audit_chain


@dataclass(frozen=True, slots=True)
class Act:
    """Who did what to which object, and the digest of the request that asked for it."""

    actor: str
    action: str
    object: str
    digest: str

    def arg(self) -> bytes:
        """The act as the last ARGV of the script that performs it."""
        return b"".join(netstring(p) for p in (self.actor, self.action, self.object, self.digest))

    @staticmethod
    def key(tag: str) -> str:
        """The chain key for acts on keys tagged ``{tag}`` (the last KEYS of the script)."""
        return audit_chain(tag)


class Digester:
    """Keyed digests of requests (one per service: ``audit.digest_secret``)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the audit digest secret is at least 32 bytes")
        self._secret = secret

    def digest(self, body: bytes) -> str:
        return hmac.new(self._secret, body, hashlib.sha256).hexdigest()

    def act(self, actor: str, action: str, object: str, body: bytes = b"") -> Act:
        return Act(actor=actor, action=action, object=object, digest=self.digest(body))


def cli_actor() -> str:
    """The actor of an act run from the command line by ops (no token): their OS user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"
