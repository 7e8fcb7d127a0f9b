"""The audit act handed to the scripts that perform acts: rooms, draws, sales, gates, the
outbox, key rotations (the programme wraps these in ``programme/acting.py``, with its
declaration check).

Each script that performs an administrative or operator act includes the audit fragment
(``audit/lua_include/audit.lua``): the caller appends the chain key of the script's own hash
tag to KEYS and the act to ARGV. Acts the service does on its own (rooms and draws defined in
the config file, demo data, tests that drive a service directly) have the actor ``service``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from guichet.audit import web as audit_web
from guichet.audit.act import Act, cli_actor
from guichet.config import Settings
from guichet.store.keys import tag_of

SERVICE = "service"


def internal(action: str, object: str) -> Act:
    """An act of the service itself (no request: an empty digest)."""
    return Act(actor=SERVICE, action=action, object=object, digest="")


def cli(settings: Settings, action: str, object: str, what: bytes) -> Act:
    """The act of an ops command run without a token (actor ``cli:<os user>``); ``what``
    is what it was asked (its arguments and input), digested under the audit key."""
    return audit_web.digester(settings.audit).act(cli_actor(), action, object, what)


def keys_args(
    act: Act | None, keys: Sequence[str], args: Sequence[Any] = ()
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of a script that includes the audit fragment: the chain of the first
    key's hash tag last in KEYS, the act last in ARGV. ``None``: a later batch of an act done
    in several calls, whose first batch wrote the record (audit.lua): an empty act."""
    return [*keys, Act.key(tag_of(keys[0]))], [*args, b"" if act is None else act.arg()]
