"""Locust scenario "window opening rush": a wave of winners' windows opens and they all come
at once, through the waiting room, to shop.

Each simulated person (an account with an open purchase window for the sale) does the
opening-surge journey (join the room, wait, be admitted; see ``opening_surge.py``), then,
while admitted:

1. browses ``GET /v1/sales/{sale}/availability`` (and ``/me``);
2. picks a pack of 3 sessions that still have seats and holds it (``POST …/holds`` with a
   fresh ``Idempotency-Key``); 409 ``sold-out`` is a right answer: it browses and tries again,
   at most ``--attempts`` times; 409 ``quota-exceeded`` ends its shopping;
3. confirms the hold (``POST …/holds/{id}/confirm``) with probability ``--confirm-share``,
   else abandons it (``DELETE …/holds/{id}``), then maybe holds another pack
   (``--packs`` at most).

Every answer is checked; 403 (window) or a wrong body is a failure. The tally adds holds,
confirms, abandons, sold-out answers and tickets bought.

    python -m loadtest.surge --scenario window_rush --users 300
"""

from __future__ import annotations

import random
import secrets
from pathlib import Path
from typing import Any

from locust import events

try:
    from loadtest.scenarios import opening_surge as surge
except ModuleNotFoundError:  # pragma: no cover - locust -f from another working directory
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from loadtest.scenarios import opening_surge as surge


def _arguments(parser: Any) -> None:
    group = parser.add_argument_group("window opening rush")
    surge.add_option(group, parser, "--sale", default="paris-2024", help="sale id")
    group.add_argument("--confirm-share", type=float, default=0.7, help="holds confirmed")
    group.add_argument("--packs", type=int, default=2, help="packs a person tries to buy")
    group.add_argument("--attempts", type=int, default=5, help="holds tried per pack")


class Shopper(surge.Person):
    """A winner in the rush: the surge journey, shopping while admitted."""

    def admitted(self, admission: dict[str, Any]) -> None:
        o = self.environment.parsed_options
        base = f"/v1/sales/{o.sale}"
        auth = self.guarded(admission)  # the sale is linked to the room: holds need both
        rng = random.Random(self.account)
        for _ in range(o.packs):
            for _attempt in range(o.attempts):
                sessions = self._browse(base, rng)
                if len(sessions) < 3:
                    surge.TALLY.count("found_nothing_left")
                    return
                outcome = self._hold(base, auth, sessions)
                if outcome == "quota":
                    return
                if isinstance(outcome, dict):
                    self._settle(base, auth, outcome, rng.random() < o.confirm_share)
                    break

    def _browse(self, base: str, rng: random.Random) -> list[tuple[str, str]]:
        with self.client.get(f"{base}/availability", name="availability",
                             catch_response=True) as r:  # fmt: skip
            body = surge._expect(r, 200, "availability")
            if not isinstance(body.get("sessions"), list):
                raise surge._fail(r, "availability: no sessions", body)
            r.success()
        open_items = [(s["session"], c["category"]) for s in body["sessions"]
                      if s.get("kind", "sport") == "sport"  # only sport sessions count
                      for c in s["categories"] if c["seats_left"] > 0]  # fmt: skip
        rng.shuffle(open_items)
        picked: dict[str, str] = {}
        for session, category in open_items:
            picked.setdefault(session, category)
            if len(picked) == 3:
                break
        return list(picked.items())

    def _hold(self, base: str, auth: dict[str, str],
              sessions: list[tuple[str, str]]) -> dict[str, Any] | str:  # fmt: skip
        body = {"packs": [{"items": [{"session": s, "category": c, "quantity": 1}
                                     for s, c in sessions]}]}  # fmt: skip
        key = secrets.token_hex(8)
        headers = {**auth, "Idempotency-Key": key}
        with self.client.post(f"{base}/holds", json=body, headers=headers, name="hold",
                              catch_response=True) as r:  # fmt: skip
            if r.status_code == 409:
                kind = str(surge._json(r).get("type", "")).rsplit("/", 1)[-1]
                if kind in ("sold-out", "quota-exceeded"):
                    r.success()  # a right answer in a rush
                    surge.TALLY.count("sold_out_answers" if kind == "sold-out" else "quota_hit")
                    return "sold_out" if kind == "sold-out" else "quota"
            held = surge._expect(r, 201, "hold")
            if held.get("state") != "held" or held.get("tickets") != 3:
                raise surge._fail(r, "hold: wrong body", held)
            r.success()
        surge.TALLY.count("holds")
        return {**held, "_key": key}

    def _settle(self, base: str, auth: dict[str, str], held: dict[str, Any], buy: bool) -> None:
        url = f"{base}/holds/{held['id']}"
        if buy:
            confirm = {"payment_reference": "locust"}
            with self.client.post(f"{url}/confirm", json=confirm, headers=auth, name="confirm",
                                  catch_response=True) as r:  # fmt: skip
                bought = surge._expect(r, 200, "confirm")
                if bought.get("state") != "confirmed":
                    raise surge._fail(r, "confirm: not confirmed", bought)
                r.success()
            surge.TALLY.count("confirms")
            surge.TALLY.records.setdefault("confirmed", []).append([self.account, held["id"]])
            surge.TALLY.extra["tickets_bought"] = surge.TALLY.extra.get("tickets_bought", 0) + 3
            return
        with self.client.delete(url, headers=auth, name="abandon", catch_response=True) as r:
            released = surge._expect(r, 200, "abandon")
            if released.get("state") != "released":
                raise surge._fail(r, "abandon: not released", released)
            r.success()
        surge.TALLY.count("abandons")


events.init_command_line_parser.add_listener(_arguments)  # type: ignore[no-untyped-call]
