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


class RoomKeys:
    """The keys of one waiting room, all in the slot of ``{room:<id>}`` (built once)."""

    __slots__ = (
        "_prefix",
        "active",
        "admitted_numbers",
        "calls",
        "cfg",
        "room",
        "sessions",
        "state",
        "tickets",
    )  # fmt: skip

    def __init__(self, room: str) -> None:
        self.room = room
        self._prefix = f"{PREFIX}{{room:{_checked(room)}}}:"
        self.cfg = self._prefix + "cfg"
        self.state = self._prefix + "state"
        self.tickets = self._prefix + "tickets"
        self.active = self._prefix + "active"
        self.sessions = self._prefix + "sessions"
        self.calls = self._prefix + "calls"
        self.admitted_numbers = self._prefix + "admitted"

    def join_limit(self, kind: str, subject: str) -> str:
        return f"{self._prefix}rl:{_checked(kind)}:{subject_digest(subject)}"

    def all(self) -> list[str]:
        """Every fixed key of the room (rate-limit buckets expire on their own)."""
        return [self.cfg, self.state, self.tickets, self.active, self.sessions, self.calls,
                self.admitted_numbers]  # fmt: skip


class DrawKeys:
    """The keys of one draw, all in the slot of ``{draw:<id>}``: its config, its entries
    (account -> "<stratum>:<registered µs>") and counts by stratum. Registration is metered by
    the waiting room, so one shard per draw carries it (docs/architecture.md)."""

    __slots__ = ("cfg", "counts", "draw", "entries")

    def __init__(self, draw: str) -> None:
        prefix = f"{PREFIX}{{draw:{_checked(draw)}}}:"
        self.draw = draw
        self.cfg = prefix + "cfg"
        self.entries = prefix + "entries"
        self.counts = prefix + "counts"
