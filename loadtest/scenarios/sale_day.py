"""Locust scenario "sale day": the mixed profile of a day when a wave's windows are open,
registration for the next draw runs, and many people just look.

Weights (users of each kind): browsers 6 (``steady_browsing.Browser``: availability, /me, the
draw, with think times), registrants 2 (``registration_day.Registrant``: through the waiting
room into the draw, a double click, the entry check), shoppers 2 (``window_rush.Shopper``,
winners ``<--winner-prefix>-n`` with open windows: through the room, browse, hold, confirm or
abandon), where a shopper also replays each hold from a second tab (the same
``Idempotency-Key`` must give the same hold) and retries once on 503 after ``Retry-After``.

    python -m loadtest.surge --scenario sale_day --users 300 --run-time 60s
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
from locust import events

try:
    from loadtest.scenarios import opening_surge as surge
    from loadtest.scenarios import (
        registration_day,
        steady_browsing,  # after the two: it adds what they lack
        window_rush,
    )
except ModuleNotFoundError:  # pragma: no cover - locust -f from another working directory
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from loadtest.scenarios import opening_surge as surge
    from loadtest.scenarios import registration_day, steady_browsing, window_rush

_winners = itertools.count()


def _arguments(parser: Any) -> None:
    parser.add_argument_group("sale day").add_argument(
        "--winner-prefix", default="winner", help="shoppers are PREFIX-0, PREFIX-1, …"
    )


class DayBrowser(steady_browsing.Browser):
    weight = 6


class DayRegistrant(registration_day.Registrant):
    weight = 2


class DayShopper(window_rush.Shopper):
    """A winner who shops, with a second tab that replays each hold."""

    weight = 2

    def pick_account(self, o: Any) -> str:
        return f"{o.winner_prefix}-{next(_winners)}"

    def _hold(self, base: str, auth: dict[str, str],
              sessions: list[tuple[str, str]]) -> dict[str, Any] | str:  # fmt: skip
        outcome = super()._hold(base, auth, sessions)
        if isinstance(outcome, dict):
            self._second_tab(base, auth, outcome)
        return outcome

    def _second_tab(self, base: str, auth: dict[str, str], held: dict[str, Any]) -> None:
        """The same request again with the same key (the second tab, or a retry after a lost
        reply): the server must replay the first answer, not hold twice."""
        body = {"packs": [{"items": [
            {"session": i["session"], "category": i["category"], "quantity": i["quantity"]}
            for i in held["items"]]}]}  # fmt: skip
        headers = {**auth, "Idempotency-Key": held["_key"]}
        for attempt in (1, 2):
            with self.client.post(f"{base}/holds", json=body, headers=headers,
                                  name="hold (second tab)", catch_response=True) as r:  # fmt: skip
                if r.status_code == 503 and attempt == 1:
                    r.success()
                    gevent.sleep(surge._retry_after(r))
                    continue
                again = surge._expect(r, 201, "hold (second tab)")
                if again.get("id") != held["id"]:
                    raise surge._fail(r, "hold (second tab): another hold", again)
                r.success()
            surge.TALLY.count("second_tab_replays_ok")
            return


events.init_command_line_parser.add_listener(_arguments)  # type: ignore[no-untyped-call]
