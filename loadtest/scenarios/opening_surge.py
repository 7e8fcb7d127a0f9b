"""Locust scenario "opening surge": people pour into a waiting room around its opening.

Each simulated person (one Locust user, one life, then it stops):

1. gets an account token from the server's development issuer (minted here with its key);
2. joins the room (``POST /v1/rooms/{room}/join``, Bearer token) and keeps the queue ticket;
3. polls ``GET /v1/rooms/{room}/status`` with ``X-Queue-Ticket``, waiting ``poll_after_ms``
   times ``--poll-scale`` between polls, until the state is ``ready``;
4. asks ``POST /v1/rooms/{room}/admit`` (Bearer + ticket); a 409 ``room-full``/``not-ready``
   is a right answer: it waits ``Retry-After`` (scaled the same way) and asks again;
5. thinks ``--think-time`` seconds, then ``POST /v1/rooms/{room}/leave``, and is done.

Every response is checked (``catch_response``) by :mod:`loadtest.checks`: bad JSON, a state
outside the allowed set, a position that goes up, a number changed or given to two accounts
(within this Locust process) … each is a failure named by its kind. When every person has
finished the run ends by itself (before ``--run-time``).

Run it through ``python -m loadtest.surge`` (starts a server, creates the room, writes the
reports), or by hand against a running server whose room exists::

    locust -f loadtest/scenarios/opening_surge.py --headless --host http://127.0.0.1:8080 \\
        --room surge --dev-key-file .guichet/dev-issuer.pem -u 500 -r 200 -t 60s
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]
import msgspec
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

from guichet import auth
from guichet.room.guard import ADMISSION_HEADER

# Importable both as a module of the repository and as a file Locust loads by path.
try:
    from loadtest.checks import Numbers, Watch, Wrong, check_admission, check_left
except ModuleNotFoundError:  # pragma: no cover - locust -f from another working directory
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from loadtest.checks import Numbers, Watch, Wrong, check_admission, check_left

log = logging.getLogger("opening_surge")

TICKET_HEADER = "X-Queue-Ticket"
RUN_ID = secrets.token_hex(3)  # account ids are unique per run: reruns never collide
_accounts = itertools.count()
_decode = msgspec.json.Decoder().decode


def _arguments(parser: Any) -> None:
    group = parser.add_argument_group("opening surge")
    group.add_argument("--room", default="surge", help="room id (must exist)")
    group.add_argument(
        "--dev-key-file",
        default=".guichet/dev-issuer.pem",
        help="the server's security.dev_issuer_key_file (account tokens are minted with it)",
    )
    group.add_argument("--token-issuer", default="guichet-dev", help="security.issuer")
    group.add_argument("--token-audience", default="guichet", help="security.audience")
    group.add_argument(
        "--poll-scale",
        type=float,
        default=0.2,
        help="multiply poll_after_ms and Retry-After by this (load tests wait less)",
    )
    group.add_argument("--think-time", type=float, default=1.0, help="seconds before leaving")
    group.add_argument(
        "--accounts-file",
        default="",
        help="one account id a line, taken in order (e.g. the winners of a draw); overrides "
        "--account-prefix",
    )
    group.add_argument(
        "--account-prefix",
        default="",
        help="accounts are PREFIX-0, PREFIX-1, … (e.g. winners prepared with windows); "
        "default: a fresh prefix per run",
    )
    group.add_argument("--surge-report", default="", help="write the people tally (JSON) here")
    group.add_argument(
        "--final-csv",
        default="",
        help="write the final request stats to PREFIX_stats.csv / PREFIX_failures.csv at exit "
        "(--csv files are refreshed every second and can miss the last requests)",
    )


def add_option(group: Any, parser: Any, flag: str, **options: Any) -> None:
    """Add ``flag`` unless another scenario of the same locustfile already did (several
    scenarios share --sale and --draw)."""
    if not any(flag in action.option_strings for action in parser._actions):
        group.add_argument(flag, **options)


class Tally:
    """What happened to the people of this Locust process (written to --surge-report)."""

    def __init__(self) -> None:
        self.numbers = Numbers()
        self.started = self.joined = self.admitted = self.left = self.finished = 0
        self.gave_up = 0
        self.polls = self.admit_retries = 0
        self.queue_s: list[float] = []  # join → admission, per admitted person
        self.started_at = time.time()
        self.quit_scheduled = False
        self.extra: dict[str, int] = {}  # counts of scenarios built on this one
        self.records: dict[str, list[Any]] = {}  # what they want checked after the run

    def count(self, name: str) -> None:
        self.extra[name] = self.extra.get(name, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "people_started": self.started,
            "people_joined": self.joined,
            "people_admitted": self.admitted,
            "people_left": self.left,
            "people_finished": self.finished,
            "people_gave_up": self.gave_up,
            "status_polls": self.polls,
            "admit_retries": self.admit_retries,
            "distinct_numbers": len(self.numbers.owners),
            "queue_s": sorted(round(q, 3) for q in self.queue_s),
            "wall_s": round(time.time() - self.started_at, 3),
            **self.extra,
            **self.records,
        }


TALLY = Tally()


class GiveUp(Exception):
    """This person cannot go on (a failure was already reported)."""


class Person(FastHttpUser):
    """One person of the surge: join, wait, get admitted, leave, then nothing more.

    A person who is done does not raise ``StopUser``: while ramping up, Locust replaces
    stopped users to keep its target count, which would send more people than asked for.
    Instead it stays in ``wait_time`` (which Locust interrupts at once on stop) until the run
    ends, and the run ends as soon as every person is done.
    """

    # Every person keeps one connection, as a browser would; the pool is per user anyway.
    concurrency = 1

    def wait_time(self) -> float:
        return 3600.0 if self.done else 0.0

    def on_start(self) -> None:
        o = self.environment.parsed_options
        self.done = False
        self.room: str = o.room
        self.scale: float = o.poll_scale
        self.think: float = o.think_time
        self.account = self.pick_account(o)
        self.token = auth.mint(
            _dev_key(o.dev_key_file),
            issuer=o.token_issuer,
            audience=o.token_audience,
            subject=self.account,
            ttl_s=3600,
        )
        self.watch = Watch(self.account, self.room, TALLY.numbers)
        self.base = f"/v1/rooms/{self.room}"

    @task
    def live(self) -> None:
        if self.done:
            return
        self.done = True
        target = getattr(self.environment.parsed_options, "num_users", None)
        if target and TALLY.started >= target:
            return  # a replacement Locust spawned anyway: the quota of people is reached
        TALLY.started += 1
        try:
            self._journey()
        except GiveUp:
            TALLY.gave_up += 1
        except Exception as exc:  # a bug here, not the server's: reported, and this person stops
            TALLY.gave_up += 1
            self.environment.events.request.fire(
                request_type="PERSON",
                name="journey",
                response_time=0,
                response_length=0,
                exception=exc,
                context={},
            )
        TALLY.finished += 1
        _maybe_quit(self.environment)

    # --- the journey ---------------------------------------------------------------------

    def _journey(self) -> None:
        joined_at = time.monotonic()
        ticket, status = self._join()
        TALLY.joined += 1
        while status["state"] != "ready":
            gevent.sleep(status["poll_after_ms"] / 1000 * self.scale)
            status = self._status(ticket)
        admission = self._admit(ticket)
        TALLY.admitted += 1
        TALLY.queue_s.append(time.monotonic() - joined_at)
        self.admitted(admission)
        gevent.sleep(self.think)
        self._leave(admission["ticket"])
        TALLY.left += 1

    def pick_account(self, o: Any) -> str:
        """This person's account: the next line of --accounts-file, else PREFIX-n."""
        n = next(_accounts)
        listed = _listed(getattr(o, "accounts_file", ""))
        if listed:
            return listed[n % len(listed)]
        prefix = getattr(o, "account_prefix", "") or f"surge-{RUN_ID}"
        return f"{prefix}-{n}"

    def admitted(self, admission: dict[str, Any]) -> None:
        """What a person does once admitted (nothing here; other scenarios add to it)."""

    def guarded(self, admission: dict[str, Any]) -> dict[str, str]:
        """The headers of a call to a sale or draw linked to the room: the account bearer and
        the room's admission token (room/guard.py; 403 without it)."""
        return {"Authorization": f"Bearer {self.token}", ADMISSION_HEADER: admission["token"]}

    def _join(self) -> tuple[str, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {self.token}"}
        while True:
            with self.client.post(
                f"{self.base}/join", headers=headers, name="join", catch_response=True
            ) as r:
                if r.status_code == 429:  # the server's join limits are too low for this test
                    r.failure("join: 429 rate limited (raise rooms.join_per_ip_per_min)")
                    gevent.sleep(_retry_after(r) * self.scale)
                    continue
                body = _expect(r, 201, "join")
                try:
                    joined = self.watch.joined(body, first=True)
                except Wrong as exc:
                    raise _fail(r, f"join: {exc}", body) from None
                r.success()
                return str(joined["ticket"]), joined

    def _status(self, ticket: str) -> dict[str, Any]:
        TALLY.polls += 1
        with self.client.get(
            f"{self.base}/status",
            headers={TICKET_HEADER: ticket},
            name="status",
            catch_response=True,
        ) as r:
            body = _expect(r, 200, "status")
            try:
                status = self.watch.see(body)
            except Wrong as exc:
                raise _fail(r, f"status: {exc}", body) from None
            r.success()
            return status

    def _admit(self, ticket: str) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}", TICKET_HEADER: ticket}
        while True:
            with self.client.post(
                f"{self.base}/admit", headers=headers, name="admit", catch_response=True
            ) as r:
                if r.status_code == 409:
                    problem = _json(r)
                    kind = str(problem.get("type", "")).rsplit("/", 1)[-1]
                    if kind in ("room-full", "not-ready") and r.headers.get("Retry-After"):
                        r.success()  # a right answer: wait and ask again
                        TALLY.admit_retries += 1
                        gevent.sleep(_retry_after(r) * self.scale)
                        continue
                    raise _fail(r, f"admit: 409 {kind or 'untyped'}", problem)
                body = _expect(r, 200, "admit")
                try:
                    admission = check_admission(body, self.room)
                except Wrong as exc:
                    raise _fail(r, f"admit: {exc}", body) from None
                r.success()
                return admission

    def _leave(self, ticket: str) -> None:
        headers = {"Authorization": f"Bearer {self.token}", TICKET_HEADER: ticket}
        with self.client.post(
            f"{self.base}/leave", headers=headers, name="leave", catch_response=True
        ) as r:
            body = _expect(r, 200, "leave")
            try:
                check_left(body, self.room)
            except Wrong as exc:
                raise _fail(r, f"leave: {exc}", body) from None
            r.success()


# --- helpers -----------------------------------------------------------------------------

_keys: dict[str, Any] = {}
_lists: dict[str, list[str]] = {}


def _listed(path: str) -> list[str]:
    if path and path not in _lists:
        _lists[path] = [line.strip() for line in Path(path).read_text().splitlines() if line]
    return _lists.get(path, [])


def _dev_key(path: str) -> Any:
    if path not in _keys:
        _keys[path] = auth.load_or_create_dev_key(path)
    return _keys[path]


def _json(r: Any) -> dict[str, Any]:
    try:
        body = _decode(r.content or b"")
    except msgspec.DecodeError:
        return {}
    return body if isinstance(body, dict) else {}


_logged: dict[str, int] = {}


def _fail(r: Any, kind: str, body: Any = None) -> GiveUp:
    """Report ``r`` as a failure of ``kind`` (stable text) and end this person's journey."""
    r.failure(kind)
    if _logged.setdefault(kind, 0) < 3:  # the details of the first few, for the log
        _logged[kind] += 1
        log.warning("%s: HTTP %s %s", kind, r.status_code, json.dumps(body)[:500])
    return GiveUp(kind)


def _expect(r: Any, status: int, what: str) -> Any:
    """The decoded JSON body of a response that must have ``status``, else a failure."""
    if not r.status_code:  # no answer at all (an HTTP error status sets r.error too)
        raise _fail(r, f"{what}: connection error {type(r.error).__name__}")
    if r.status_code != status:
        problem = _json(r)
        kind = str(problem.get("type", "")).rsplit("/", 1)[-1]
        raise _fail(r, f"{what}: HTTP {r.status_code} {kind}".rstrip(), problem)
    try:
        return _decode(r.content or b"")
    except msgspec.DecodeError:
        text = (r.content or b"")[:200].decode(errors="replace")
        raise _fail(r, f"{what}: bad JSON", text) from None


def _expect_problem(r: Any, status: int, what: str) -> dict[str, Any]:
    """A problem+json answer with ``status`` (e.g. a 404 the client expects), else a failure."""
    if r.status_code != status:
        raise _fail(r, f"{what}: HTTP {r.status_code}, {status} expected", _json(r))
    if not str(r.headers.get("Content-Type", "")).startswith("application/problem+json"):
        raise _fail(r, f"{what}: {status} is not problem+json")
    return _json(r)


def _retry_after(r: Any) -> float:
    try:
        return max(0.05, float(r.headers.get("Retry-After") or 1))
    except ValueError:
        return 1.0


def _maybe_quit(environment: Environment) -> None:
    """Everyone who was to come has finished: end the run now rather than at --run-time."""
    runner = environment.runner
    target = getattr(environment.parsed_options, "num_users", None)
    if runner is None or not target or TALLY.quit_scheduled or TALLY.finished < target:
        return
    TALLY.quit_scheduled = True
    log.info("all %d people finished; stopping", TALLY.finished)
    gevent.spawn_later(0.2, runner.quit)


def _write_reports(environment: Environment, **_: Any) -> None:
    """At exit, when the statistics are final: the people tally and the request stats.

    Distributed: each worker writes its own tally (``people-<pid>.json``, merged by the
    runner); only the master, which holds the aggregated statistics, writes the CSV."""
    options = environment.parsed_options
    role = type(environment.runner).__name__
    path = getattr(options, "surge_report", "")
    if path and role != "MasterRunner":
        target = Path(path)
        if role == "WorkerRunner":
            target = target.with_name(f"{target.stem}-{os.getpid()}{target.suffix}")
        target.write_text(json.dumps(TALLY.as_dict(), indent=1))
    prefix = getattr(options, "final_csv", "")
    if prefix and role != "WorkerRunner":
        writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
        with Path(f"{prefix}_stats.csv").open("w", newline="") as fh:
            writer.requests_csv(csv.writer(fh))
        with Path(f"{prefix}_failures.csv").open("w", newline="") as fh:
            writer.failures_csv(csv.writer(fh))


events.init_command_line_parser.add_listener(_arguments)  # type: ignore[no-untyped-call]
events.quitting.add_listener(_write_reports)  # type: ignore[no-untyped-call]
