"""Units shared by every component: Valkey's ``TIME``, the scripts and the keys count time in
microseconds (``*_us``), the settings and the wire in seconds (``*_s``, RFC 3339)."""

from __future__ import annotations

#: Microseconds per second: ``seconds * US_PER_S`` is what a script takes, ``us / US_PER_S``
#: what the wire shows.
US_PER_S = 1_000_000
