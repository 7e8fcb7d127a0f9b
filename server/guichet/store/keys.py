"""Every Redis key name Guichet uses, in one place, with its hash tag chosen on purpose.

Redis Cluster hashes only the part of a key inside the first ``{…}``; keys that one Lua script
touches must share that tag so they live in one slot. Rules used here:

- a rate-limit bucket is its own tag (``{rl:<scope>:<subject>}``): buckets spread over shards;
- later components add their own families here (``{room:<id>}``, ``{sale:<id>}``, …), each
  tagged by the entity whose invariant a script protects.

Components never build key strings themselves; Lua scripts never build key names.
"""

from __future__ import annotations

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
