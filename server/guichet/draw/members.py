"""Member lists of restricted strata as ops load them (``guichet draw members load``): the pure
parser of the file. The list itself lives in Redis (``DrawKeys.members``), see service.py.

The format: UTF-8 text, one account id per line (the ``sub`` of the account's identity token),
``\\n`` or ``\\r\\n`` line ends; blank lines and lines starting with ``#`` are skipped; a
repeated id counts once. An id is 1-128 printable characters, as auth accepts a subject.
"""

from __future__ import annotations

from guichet.auth import MAX_SUBJECT_LEN, printable

MAX_MEMBERS = 10_000_000


class MemberListError(ValueError):
    """The file is not a member list; the message names the line."""


def parse(data: bytes) -> list[str]:
    """The distinct account ids of a member list, in file order."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = data[: exc.start].count(b"\n") + 1
        raise MemberListError(f"line {at}: not UTF-8") from None
    seen: dict[str, None] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        if not line.strip() or line.startswith("#"):
            continue
        if not printable(line, MAX_SUBJECT_LEN):
            raise MemberListError(
                f"line {number}: an account id is 1-{MAX_SUBJECT_LEN} printable characters"
            )
        seen[line] = None
        if len(seen) > MAX_MEMBERS:
            raise MemberListError(f"more than {MAX_MEMBERS} members")
    return list(seen)
