"""Every Redis key name Guichet uses, in one place, with its hash tag chosen on purpose.

Redis Cluster hashes only the part of a key inside the first ``{…}``; keys that one Lua script
touches must share that tag so they live in one slot. Rules used here:

- a rate-limit bucket is its own tag (``{rl:<scope>:<subject>}``): buckets spread over shards;
- everything of one waiting room is tagged ``{room:<id>}``: its config, counters, tickets,
  sessions, checkpoints, and its join rate-limit buckets, so that join, tick and admit are each
  one script on one shard (one room's load fits one shard: see docs/architecture.md);
- later components add their own families here (``{sale:<id>}``, …), each tagged by the
  entity whose invariant a script protects.

Components never build key strings themselves; Lua scripts never build key names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

PREFIX = "g:"  # namespace, so Guichet can share a database with other tenants


def _checked(part: str) -> str:
    if not part or any(c in part for c in "{}\r\n "):
        raise ValueError(f"invalid key part {part!r}")
    return part


def tag_of(key: str) -> str:
    """The hash tag Redis Cluster would use for ``key`` (the whole key when there is none)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def rate_limit(scope: str, subject: str) -> str:
    """GCRA state (theoretical arrival time, µs) of one limited subject, e.g. an IP or account."""
    return f"{PREFIX}{{rl:{_checked(scope)}:{_checked(subject)}}}"


def subject_digest(subject: str) -> str:
    """A short, key-safe digest of an account id or IP (any characters may appear in those)."""
    return hashlib.blake2b(subject.encode(), digest_size=12).hexdigest()


ROOMS_INDEX = f"{PREFIX}rooms"  # set of room ids (own slot; written after the room's cfg)


@dataclass(frozen=True)
class RoomKeys:
    """The keys of one waiting room, all in the slot of ``{room:<id>}``."""

    room: str

    def _k(self, part: str) -> str:
        return f"{PREFIX}{{room:{_checked(self.room)}}}:{part}"

    @property
    def cfg(self) -> str:
        return self._k("cfg")

    @property
    def state(self) -> str:
        return self._k("state")

    @property
    def tickets(self) -> str:
        return self._k("tickets")

    @property
    def active(self) -> str:
        return self._k("active")

    @property
    def sessions(self) -> str:
        return self._k("sessions")

    @property
    def calls(self) -> str:
        return self._k("calls")

    @property
    def admitted_numbers(self) -> str:
        return self._k("admitted")

    def join_limit(self, kind: str, subject: str) -> str:
        return self._k(f"rl:{_checked(kind)}:{subject_digest(subject)}")

    def all(self) -> list[str]:
        """Every fixed key of the room (rate-limit buckets expire on their own)."""
        return [
            self.cfg,
            self.state,
            self.tickets,
            self.active,
            self.sessions,
            self.calls,
            self.admitted_numbers,
        ]
