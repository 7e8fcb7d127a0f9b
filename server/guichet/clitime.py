"""Times on the command line: RFC 3339, seconds optional (``2026-12-01T08:00Z``)."""

from __future__ import annotations

import argparse
import re
from datetime import datetime

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:\d{2})"
)
EXAMPLE = "2026-12-01T08:00Z"
HELP = f"RFC 3339 with a UTC offset, seconds optional, e.g. {EXAMPLE}"


def rfc3339(text: str) -> str:
    """argparse ``type``: a time as typed by a person, returned in the full RFC 3339 form the
    API takes (``2026-12-01T08:00:00+00:00``); anything else is a usage error (exit 2)."""
    if not _RFC3339.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 time with a UTC offset, e.g. {EXAMPLE} "
            "or 2026-12-01T10:00:00+02:00"
        )
    try:
        return datetime.fromisoformat(text.strip().upper().replace(" ", "T")).isoformat()
    except ValueError as exc:  # 2026-02-30T08:00Z: the shape is right, the date is not
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
