"""Locust scenario "steady browsing": people who look but do not buy, all day long.

Each browser (signed in, no waiting room: these pages are not queued) loops with think times
(``--think-min``/``--think-max`` seconds) over: the sale's availability (most often), its own
``/me`` in the sale, the draw's public page and its own entry. Every answer is checked: 200
with the expected shape, or 404 for an entry it does not have. The run lasts ``--run-time``.

    python -m loadtest.surge --scenario steady_browsing --users 200 --run-time 60s
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

from locust import FastHttpUser, events, task

try:
    from loadtest.scenarios import opening_surge as surge
except ModuleNotFoundError:  # pragma: no cover - locust -f from another working directory
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from loadtest.scenarios import opening_surge as surge

from guichet import auth

_browsers = itertools.count()


def _arguments(parser: Any) -> None:
    group = parser.add_argument_group("steady browsing")
    group.add_argument("--think-min", type=float, default=0.5, help="seconds between pages")
    group.add_argument("--think-max", type=float, default=2.0)
    surge.add_option(group, parser, "--sale", default="paris-2024", help="sale id")
    surge.add_option(group, parser, "--draw", default="lottery", help="draw id")


class Browser(FastHttpUser):
    """Looks at availability, its window and the draw, with think times; never buys."""

    concurrency = 1
    weight = 1

    def wait_time(self) -> float:
        o = self.environment.parsed_options
        return random.uniform(o.think_min, o.think_max)

    def on_start(self) -> None:
        o = self.environment.parsed_options
        self.account = f"browser-{surge.RUN_ID}-{next(_browsers)}"
        token = auth.mint(surge._dev_key(o.dev_key_file), issuer=o.token_issuer,
                          audience=o.token_audience, subject=self.account, ttl_s=3600)  # fmt: skip
        self.auth = {"Authorization": f"Bearer {token}"}

    @task(5)
    def availability(self) -> None:
        o = self.environment.parsed_options
        with self.client.get(f"/v1/sales/{o.sale}/availability", name="availability",
                             catch_response=True) as r:  # fmt: skip
            body = surge._expect(r, 200, "availability")
            if not isinstance(body.get("sessions"), list) or "seats_left" not in body:
                raise surge._fail(r, "availability: wrong body", body)
            r.success()
        surge.TALLY.count("pages")

    @task(2)
    def my_sale(self) -> None:
        o = self.environment.parsed_options
        with self.client.get(f"/v1/sales/{o.sale}/me", headers=self.auth, name="sale me",
                             catch_response=True) as r:  # fmt: skip
            body = surge._expect(r, 200, "sale me")
            if body.get("tickets_left") != 30 or body.get("window", {}).get("state") is None:
                raise surge._fail(r, "sale me: wrong body", body)
            r.success()
        surge.TALLY.count("pages")

    @task(1)
    def the_draw(self) -> None:
        o = self.environment.parsed_options
        with self.client.get(f"/v1/draws/{o.draw}", name="draw", catch_response=True) as r:
            body = surge._expect(r, 200, "draw")
            if body.get("id") != o.draw:
                raise surge._fail(r, "draw: wrong body", body)
            r.success()
        with self.client.get(f"/v1/draws/{o.draw}/entries/me", headers=self.auth,
                             name="my entry (none)", catch_response=True) as r:  # fmt: skip
            surge._expect_problem(r, 404, "my entry")
            r.success()
        surge.TALLY.count("pages")


events.init_command_line_parser.add_listener(_arguments)  # type: ignore[no-untyped-call]
