"""Locust scenario "registration day": people enter the draw through the waiting room.

Registration for the draw opens behind a waiting room, as on the day the lottery opened:
each simulated person joins the room, waits, is admitted (the opening-surge journey, see
``opening_surge.py``), then, while admitted:

1. registers for the draw (``POST /v1/draws/{draw}/entries``, both consents): 201 expected;
2. retries the same registration as an impatient double click: 200 with the same entry;
3. reads ``GET /v1/draws/{draw}/entries/me``: status ``registered``, same stratum;

then leaves the room. Every answer is checked; a wrong one is a failure named by its kind.
The tally adds ``registered``, ``registration_repeats_ok`` and ``entry_checks_ok``.

    python -m loadtest.surge --scenario registration_day --users 500

or by hand against a running server with the room and the draw created::

    locust -f loadtest/scenarios/registration_day.py --headless --host http://127.0.0.1:8080 \\
        --room surge --draw lottery --dev-key-file .guichet/dev-issuer.pem -u 500 -r 200 -t 60s
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from locust import events

try:
    from loadtest.scenarios import opening_surge as surge
except ModuleNotFoundError:  # pragma: no cover - locust -f from another working directory
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from loadtest.scenarios import opening_surge as surge

CONSENT = {"accept_rules": True, "accept_data_processing": True}


def _arguments(parser: Any) -> None:
    group = parser.add_argument_group("registration day")
    surge.add_option(group, parser, "--draw", default="lottery", help="draw id (open)")


class Registrant(surge.Person):
    """A person of registration day: the surge journey, registering while admitted."""

    def admitted(self, admission: dict[str, Any]) -> None:
        draw = self.environment.parsed_options.draw
        url = f"/v1/draws/{draw}/entries"
        headers = self.guarded(admission)  # the draw is linked to the room: entries need both
        with self.client.post(
            url, json=CONSENT, headers=headers, name="register", catch_response=True
        ) as r:
            entry = surge._expect(r, 201, "register")
            self._check(r, entry, "register")
            r.success()
        surge.TALLY.count("registered")
        with self.client.post(
            url, json=CONSENT, headers=headers, name="re-register", catch_response=True
        ) as r:
            again = surge._expect(r, 200, "register repeat")
            if again != entry:
                raise surge._fail(r, "register repeat: another entry", again)
            r.success()
        surge.TALLY.count("registration_repeats_ok")
        with self.client.get(f"{url}/me", headers=headers, name="entry", catch_response=True) as r:
            mine = surge._expect(r, 200, "entry")
            self._check(r, mine, "entry")
            r.success()
        surge.TALLY.count("entry_checks_ok")

    def _check(self, r: Any, entry: dict[str, Any], what: str) -> None:
        if entry.get("account") != self.account or entry.get("status") != "registered":
            raise surge._fail(r, f"{what}: wrong account or status", entry)


events.init_command_line_parser.add_listener(_arguments)  # type: ignore[no-untyped-call]
