"""The furthest a client has been shown: a signed mark of a room's serving counter.

Each worker answers status polls from its own snapshot, refreshed by its own pacer tick, so
two workers can be a few numbers apart; a client whose polls land on both would see its place
move back. Every status therefore carries ``seen``: ``<serving>.<floor>.<mac>``, the counters
it was computed from, MAC'd (HMAC-SHA256, key derived from the ticket secret, bound to the
room). The client sends it back (``X-Queue-Seen``, or ``Last-Event-ID`` / ``?seen=`` for the
event stream) and a worker answers from ``max(own snapshot, seen)``. Both counters only ever
grow in Redis, so a genuine mark is never ahead of the truth; a client cannot forge a larger
one (the MAC), and replaying anyone's genuine mark of the same room is harmless.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import NamedTuple

from guichet.cache import Bounded

_MAC_BYTES = 12
_MAX_LEN = 64


class Mark(NamedTuple):
    serving: int
    floor: int


class BadMark(ValueError):
    pass


class Marks:
    """Signs and verifies ``seen`` marks (verified ones are remembered, as tickets are)."""

    def __init__(self, ticket_secret: bytes, cache_size: int = 100_000) -> None:
        self._key = hmac.new(ticket_secret, b"guichet-queue-seen", hashlib.sha256).digest()
        self._cache: Bounded[tuple[str, str], Mark] = Bounded(cache_size)

    def _mac(self, room: str, serving: int, floor: int) -> str:
        msg = f"{room}:{serving}:{floor}".encode()
        digest = hmac.new(self._key, msg, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(digest).decode()

    def sign(self, room: str, mark: Mark) -> str:
        return f"{mark.serving}.{mark.floor}.{self._mac(room, *mark)}"

    def verify(self, room: str, raw: str) -> Mark:
        """The mark, or :class:`BadMark` (malformed or not issued for this room)."""
        cached = self._cache.get((room, raw))
        if cached is not None:
            return cached
        parts = raw.split(".") if len(raw) <= _MAX_LEN else ()
        if (
            len(parts) != 3
            or not all(p.isascii() and p.isdigit() for p in parts[:2])
            or not parts[2].isascii()  # non-UTF-8 header bytes arrive as lone surrogates
        ):
            raise BadMark("not a mark this server issued (<serving>.<floor>.<mac>)")
        mark = Mark(int(parts[0]), int(parts[1]))
        if not hmac.compare_digest(parts[2].encode(), self._mac(room, *mark).encode()):
            raise BadMark("does not verify for this room")
        self._cache.put((room, raw), mark)
        return mark
