"""What a right answer of the waiting room looks like to one person in a surge.

Pure code (no Locust, no gevent) so that the tests can feed it bodies directly. A wrong
answer raises :class:`Wrong` whose message is a short, stable *kind* ("position went up",
"duplicate number", …): Locust groups failures by message, so a kind must not carry numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from guichet.room.model import STATES

#: States a person may see during an opening surge; the others (expired, closed, sold_out)
#: are legal answers in general but mean something went wrong in this scenario.
SURGE_STATES: tuple[str, ...] = ("prequeue", "waiting", "ready", "admitted")
_ORDER = {state: i for i, state in enumerate(SURGE_STATES)}


class Wrong(Exception):
    """The server's answer is wrong; ``str(exc)`` is the kind of wrongness."""


def _int(body: dict[str, Any], key: str, *, optional: bool = False, minimum: int = 0) -> int | None:
    value = body.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise Wrong(f"bad field {key}")
    return value


@dataclass
class Numbers:
    """Queue numbers handed out so far (one Locust process): no two accounts share one."""

    owners: dict[int, str] = field(default_factory=dict)

    def claim(self, number: int, account: str) -> None:
        owner = self.owners.setdefault(number, account)
        if owner != account:
            raise Wrong("duplicate number")


@dataclass
class Watch:
    """Everything one person has been told so far, to catch answers that contradict it."""

    account: str
    room: str
    numbers: Numbers
    state: str | None = None
    number: int | None = None
    position: int | None = None
    serving: int = 0
    polls: int = 0

    def see(self, body: Any) -> dict[str, Any]:
        """Check a Status-shaped body (status poll, or the join answer); returns it."""
        if not isinstance(body, dict):
            raise Wrong("not a JSON object")
        if body.get("room") != self.room:
            raise Wrong("wrong room")
        state = body.get("state")
        if state not in STATES:
            raise Wrong("unknown state")
        if state not in _ORDER:
            raise Wrong(f"unexpected state {state}")
        for key in ("opens_at", "closes_at"):
            if not isinstance(body.get(key), str):
                raise Wrong(f"bad field {key}")
        if not isinstance(body.get("admission_rate"), int | float):
            raise Wrong("bad field admission_rate")
        serving = _int(body, "serving")
        poll = _int(body, "poll_after_ms", minimum=1)
        number = _int(body, "number", optional=True)
        position = _int(body, "position", optional=True)
        ahead = _int(body, "ahead", optional=True)
        _int(body, "eta_s", optional=True)
        assert serving is not None
        assert poll is not None
        if poll > 30_000:
            raise Wrong("bad field poll_after_ms")

        if self.state is not None and _ORDER[state] < _ORDER[self.state]:
            raise Wrong("state went backwards")
        if number is not None:
            if self.number is not None and number != self.number:
                raise Wrong("number changed")
            self.numbers.claim(number, self.account)
        elif self.number is not None and state in ("waiting", "ready"):
            raise Wrong("number vanished")
        if state == "waiting" and number is not None:
            if position is None or ahead is None or position != ahead + 1 or position < 1:
                raise Wrong("position inconsistent")
            if ahead != number - serving:
                raise Wrong("position inconsistent")
            if self.position is not None and position > self.position:
                raise Wrong("position went up")
            self.position = position
        if serving < self.serving:
            raise Wrong("serving went down")
        if state == "ready" and (number is None or number >= serving or position != 0):
            raise Wrong("ready inconsistent")
        if state == "prequeue" and number is not None:
            raise Wrong("number before opening")

        self.state, self.serving = state, serving
        if number is not None:
            self.number = number
        return body

    def joined(self, body: Any, *, first: bool) -> dict[str, Any]:
        """Check the join answer: a status plus a ticket; ``created`` on a first join."""
        self.see(body)
        if not isinstance(body.get("ticket"), str) or not body["ticket"]:
            raise Wrong("no ticket")
        if body.get("created") is not first:
            raise Wrong("created flag wrong")
        return dict(body)


def check_admission(body: Any, room: str) -> dict[str, Any]:
    """Check an admission answer: token, session expiry, redirect carrying the token."""
    if not isinstance(body, dict):
        raise Wrong("not a JSON object")
    if body.get("room") != room:
        raise Wrong("wrong room")
    for key in ("token", "ticket", "token_expires_at", "session_expires_at", "redirect_url"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise Wrong(f"bad field {key}")
    if f"guichet_token={body['token']}" not in body["redirect_url"]:
        raise Wrong("redirect without token")
    return body


def check_left(body: Any, room: str) -> None:
    if not isinstance(body, dict) or body.get("room") != room or body.get("state") != "left":
        raise Wrong("bad leave answer")
