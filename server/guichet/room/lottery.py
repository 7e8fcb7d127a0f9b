"""The random-mode draw, replayed in Python exactly as tick.lua draws it (pure, no I/O).

The people waiting are the positions ``[serving, issued)`` of a sparse array ``A`` (``A[i] = i``
unless swapped). One pick at ``serving = s`` chooses ``j = s + H(seed, s) mod (issued - s)``,
swaps ``A[j]`` and ``A[s]`` and calls position ``s`` (``serving += 1``): number ``n`` is called
once ``pos(n) < serving``. ``H(seed, s)`` is the first 13 hex digits (52 bits) of
``SHA-1(seed + ":" + decimal(s))`` as an integer (``redis.sha1hex`` in the script). Each tick
that picks logs one batch ``(serving before, count, issued)``; anyone holding the seed and the
log re-derives every pick with :func:`pick` / :class:`Draw`.
"""

from __future__ import annotations

import hashlib


def digest(seed: str, at: int) -> int:
    """``H(seed, at)``: 52 bits of SHA-1 over ``"<seed>:<at>"``."""
    return int(hashlib.sha1(f"{seed}:{at}".encode(), usedforsecurity=False).hexdigest()[:13], 16)


def pick(seed: str, serving: int, issued: int) -> int:
    """The position drawn when position ``serving`` is called with ``issued`` numbers out."""
    return serving + digest(seed, serving) % (issued - serving)


class Draw:
    """The swaps of one room's draw: position <-> number, only where they differ."""

    __slots__ = ("_number", "_position", "applied", "seed", "serving")

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self._number: dict[int, int] = {}  # position -> number (A), identity entries left out
        self._position: dict[int, int] = {}  # number -> position
        self.applied = 0  # log batches replayed
        self.serving = 0  # serving after the last batch replayed

    def number_at(self, position: int) -> int:
        return self._number.get(position, position)

    def position(self, number: int) -> int:
        return self._position.get(number, number)

    def _put(self, position: int, number: int) -> None:
        if position == number:
            self._number.pop(position, None)
            self._position.pop(number, None)
        else:
            self._number[position] = number
            self._position[number] = position

    def apply(self, serving: int, count: int, issued: int) -> None:
        """Replay one logged batch: ``count`` picks from ``serving`` with ``issued`` out."""
        for s in range(serving, serving + count):
            j = pick(self.seed, s, issued)
            if j != s:
                a, b = self.number_at(s), self.number_at(j)
                self._put(s, b)
                self._put(j, a)
        self.applied += 1
        self.serving = max(self.serving, serving + count)


def parse_batch(entry: str) -> tuple[int, int, int]:
    """A log entry ``"<serving>:<count>:<issued>"``."""
    s, c, i = entry.split(":")
    return int(s), int(c), int(i)
