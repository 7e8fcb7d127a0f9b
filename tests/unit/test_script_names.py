"""Scripts are registered and timed by their file's stem: two scripts must not share one."""

from __future__ import annotations

from collections import Counter

from guichet.app import SCRIPTS


def test_every_script_of_the_service_has_its_own_name() -> None:
    names = Counter(s.name for s in set(SCRIPTS))
    assert [n for n, count in names.items() if count > 1] == []
