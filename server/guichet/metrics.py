"""Every Prometheus metric Guichet exports, defined once, with bounded label sets.

With several worker processes, ``guichet serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a
private folder before any worker imports prometheus_client, and ``/metrics`` aggregates the
workers' files (:func:`exposition`), so counters from all workers add up.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import platform
import time
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from guichet import __version__

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

# --- HTTP ---------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "guichet_http_requests_total",
    "HTTP requests served, by route template, method and status class.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "guichet_http_request_duration_seconds",
    "Time from request start to response, by route template (one request in 4 observed).",
    ["route"],
    buckets=_LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "guichet_http_requests_in_flight",
    "Requests being handled right now (all workers).",
    multiprocess_mode="livesum",
)
HTTP_PROBLEMS = Counter(
    "guichet_http_problems_total",
    "Error responses, by problem type (the stable slug of the problem's `type`).",
    ["type"],
)
HTTP_EDGE_REFUSALS = Counter(
    "guichet_http_edge_refusals_total",
    "Connections or requests cut at the edge, by reason (header_timeout, headers_too_large, "
    "body_timeout).",
    ["reason"],
)
SSE_REFUSALS = Counter(
    "guichet_sse_refusals_total",
    "Server-Sent Events streams refused (429), by the limit hit (server, address, ticket).",
    ["limit"],
)
AUTH_FAILURES = Counter(
    "guichet_auth_failures_total",
    "Refused bearer tokens, by reason.",
    ["reason"],
)

JWKS_FETCHES = Counter(
    "guichet_jwks_fetches_total",
    "Fetches of the identity provider's JWKS (security.jwks_url), by outcome: ok, timeout, "
    "unreachable, tls_error, http_status, too_large, invalid.",
    ["outcome"],
)
JWKS_KEYS = Gauge(
    "guichet_jwks_keys",
    "Keys held from security.jwks_url (the fewest over the live workers; 0 before a fetch).",
    multiprocess_mode="livemin",
)
JWKS_LAST_SUCCESS = Gauge(
    "guichet_jwks_last_success_timestamp_seconds",
    "UNIX time of the last good fetch of security.jwks_url (the oldest over the live workers).",
    multiprocess_mode="livemin",
)

READY = Gauge(
    "guichet_ready",
    "1 when the worker is ready (Redis answers and every Lua script is loaded: /readyz), else "
    "0; the lowest over the live workers. Set by /readyz and a probe every few seconds.",
    multiprocess_mode="livemin",
)

# --- event loop ---------------------------------------------------------------------------
LOOP_LAG = Gauge(
    "guichet_event_loop_lag_seconds",
    "How late the event loop ran a timer at the last probe (worst worker).",
    multiprocess_mode="max",
)

GC_PAUSES = Histogram(
    "guichet_gc_pause_seconds",
    "Time the event loop stood still in Python's cyclic garbage collector, by generation "
    "(0, 1, 2: 2 is a full collection).",
    ["generation"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)

# --- Redis --------------------------------------------------------------------------------
REDIS_LATENCY = Histogram(
    "guichet_redis_call_duration_seconds",
    "Round-trip time of Redis calls, by operation (script name or command).",
    ["op"],
    buckets=_LATENCY_BUCKETS,
)
REDIS_ERRORS = Counter(
    "guichet_redis_errors_total",
    "Failed Redis calls, by operation and error kind.",
    ["op", "kind"],
)
REDIS_SCRIPT_RELOADS = Counter(
    "guichet_redis_script_loads_total",
    "Lua scripts (re)loaded into Redis: at start-up and after NOSCRIPT.",
)
REDIS_PLANE_CONNECTS = Counter(
    "guichet_redis_plane_connects_total",
    "Connections the script data plane opened (first ones and re-opened after a loss).",
)
REDIS_PLANE_REDIRECTS = Counter(
    "guichet_redis_plane_redirects_total",
    "Script calls the Cluster redirected or asked to retry, by kind (moved, ask, tryagain).",
    ["kind"],
)
_RESTARTS = (
    "guichet_embedded_valkey_restarts_total",
    "Times the embedded Valkey died and was restarted from its AOF by `guichet serve`.",
)
EMBEDDED_VALKEY_RESTARTS = Counter(*_RESTARTS)

# --- waiting rooms (label `room`: rooms are created by ops, a handful per sale) -----------
ROOM_WAITING = Gauge(
    "guichet_room_waiting",
    "People holding a number not yet called (pre-queue excluded).",
    ["room"],
    multiprocess_mode="livemax",
)
ROOM_PREQUEUE = Gauge(
    "guichet_room_prequeue",
    "People in the pre-queue, to be shuffled at opening.",
    ["room"],
    multiprocess_mode="livemax",
)
ROOM_ACTIVE = Gauge(
    "guichet_room_active_sessions",
    "Admitted people whose session is active (never above the room's max_active).",
    ["room"],
    multiprocess_mode="livemax",
)
ROOM_SERVING = Gauge(
    "guichet_room_serving_number",
    "Numbers called so far (the room's serving counter, a gauge).",
    ["room"],
    multiprocess_mode="livemax",
)
ROOM_RATE = Gauge(
    "guichet_room_admission_rate",
    "Measured rate at which numbers are called, people per second, over the rate window.",
    ["room"],
    multiprocess_mode="livemax",
)
ROOM_EFFECTIVE_RATE = Gauge(
    "guichet_room_effective_rate",
    "Configured admission rate after pause and stock metering, people per second.",
    ["room"],
    multiprocess_mode="livemax",
)
ROOM_ADMITTED = Counter(
    "guichet_room_admitted_total",
    "Admissions granted (new sessions).",
    ["room"],
)
ROOM_JOINS = Counter(
    "guichet_room_joins_total",
    "Queue tickets issued (new places in line).",
    ["room", "phase"],
)
ROOM_EXPIRED = Counter(
    "guichet_room_sessions_expired_total",
    "Active sessions reaped after their idle timeout.",
    ["room"],
)
ROOM_REJECTIONS = Counter(
    "guichet_room_rejections_total",
    "Refused room requests, by reason (rate_limit_ip, rate_limit_account, forged, expired, "
    "other_room, malformed, missing, not_ready, full, used, closed, mismatch, rejecting).",
    ["reason"],
)
ROOM_GUARD_REFUSALS = Counter(
    "guichet_room_guard_refusals_total",
    "Holds and draw entries refused for want of a valid admission token of the linked room, "
    "by reason (missing, forged, expired, malformed, other_room, wrong_account, ended).",
    ["reason"],
)
ROOM_GUARD_CHECKS = Counter(
    "guichet_room_guard_checks_total",
    "Admission tokens checked at holds and draw entries: verified (signature checked, then "
    "remembered by the worker) or cached (found already verified).",
    ["how"],
)
ROOM_QUEUE_TIME = Histogram(
    "guichet_room_time_in_queue_seconds",
    "From joining to admission.",
    ["room"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400),
)
ROOM_SSE_CLIENTS = Gauge(
    "guichet_room_sse_clients",
    "Open Server-Sent Events streams (all workers).",
    multiprocess_mode="livesum",
)
ROOM_MODE = Gauge(
    "guichet_room_mode",
    "The room's queueing mode: 1 for the mode on, 0 for the others (fifo, shuffle-then-fifo, "
    "random, passthrough, reject).",
    ["room", "mode"],
    multiprocess_mode="livemax",
)
ROOM_MODE_SWITCHES = Counter(
    "guichet_room_mode_switches_total",
    "Live switches of a room's queueing mode (admin PATCH / guichet room set), by new mode.",
    ["room", "mode"],
)
ROOM_TICKS = Counter(
    "guichet_room_pacer_ticks_total",
    "Pacer ticks run by this worker, by outcome (ok, error).",
    ["outcome"],
)
ROOM_REVOCATIONS = Counter(
    "guichet_room_revocations_total",
    "Admitted sessions ended by the protected site (POST /v1/rooms/{room}/revoke), by reason "
    "(finished, misbehaved); replays are not counted.",
    ["room", "reason"],
)
ROOM_CHALLENGES = Counter(
    "guichet_room_challenges_total",
    "Proof-of-work challenges at join, by outcome (issued, solved, failed).",
    ["room", "outcome"],
)
ROOM_CHALLENGE_FAILURES = Counter(
    "guichet_room_challenge_failures_total",
    "Joins refused at the proof-of-work door, by reason (missing, wrong, expired, forged, "
    "foreign, replayed).",
    ["room", "reason"],
)
ROOM_CHALLENGE_SOLVE = Histogram(
    "guichet_room_challenge_solve_seconds",
    "Time the client reported solving an accepted challenge (clamped to 0..600 s).",
    ["room"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60),
)

# --- draws ----------------------------------------------------------------------------------
DRAW_ENTRIES = Counter(
    "guichet_draw_entries_total",
    "New draw registrations, by draw and stratum (a few each, set by ops).",
    ["draw", "stratum"],
)
DRAW_WITHDRAWALS = Counter(
    "guichet_draw_withdrawals_total",
    "Entries withdrawn before the close, by draw.",
    ["draw"],
)
DRAW_REJECTIONS = Counter(
    "guichet_draw_registration_rejections_total",
    "Refused registrations, by reason (not_open, closed, bad_stratum, not_a_member, unknown, "
    "invalid).",
    ["reason"],
)
DRAW_PROGRESS = Gauge(
    "guichet_draw_run_progress_ratio",
    "Progress of a draw's run from 0 to 1 (scan half, store half; 1 once published).",
    ["draw"],
    multiprocess_mode="livemax",
)
DRAW_RANKED = Gauge(
    "guichet_draw_ranked_entries",
    "Entries in a draw's published ranking (0 until it has run).",
    ["draw"],
    multiprocess_mode="livemax",
)
DRAW_WINDOWS = Gauge(
    "guichet_draw_windows_assigned",
    "Purchase windows given so far by a draw's waves.",
    ["draw"],
    multiprocess_mode="livemax",
)
DRAW_WAVES = Gauge(
    "guichet_draw_waves_released",
    "Waves of windows completely released by a draw.",
    ["draw"],
    multiprocess_mode="livemax",
)
OUTBOX_BACKLOG = Gauge(
    "guichet_outbox_backlog",
    "Notices of an outbox (a sale's windows; programme:<games>: the State programme's ticket "
    "links) not yet read by the mailer (undelivered) or read and not acknowledged (pending).",
    ["sale", "state"],
    multiprocess_mode="livemax",
)
OUTBOX_LAG = Gauge(
    "guichet_outbox_lag_seconds",
    "How long the oldest due, unacknowledged notice of an outbox (a sale, or "
    "programme:<games>) has been due (0: none).",
    ["sale"],
    multiprocess_mode="livemax",
)

# --- shop -------------------------------------------------------------------------------------
SHOP_HOLDS = Counter(
    "guichet_shop_holds_total",
    "Hold requests by sale and outcome (held, or the rule that refused it).",
    ["sale", "outcome"],
)
SHOP_CONFIRMS = Counter(
    "guichet_shop_confirms_total",
    "Holds confirmed (turned into purchases, on disk), by sale.",
    ["sale"],
)
SHOP_RELEASES = Counter(
    "guichet_shop_releases_total", "Holds released by their account, by sale.", ["sale"]
)
SHOP_EXPIRIES = Counter(
    "guichet_shop_expiries_total", "Holds returned to stock at their expiry, by sale.", ["sale"]
)
SHOP_HOLD_LATENCY = Histogram(
    "guichet_shop_hold_duration_seconds",
    "Time to answer a hold request (validation, the hold script, the reply), by sale.",
    ["sale"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
SHOP_SEATS_LEFT = Gauge(
    "guichet_shop_seats_left",
    "Seats left per session of a sale (sessions come from the catalogue: bounded).",
    ["sale", "session"],
    multiprocess_mode="livemin",
)
# --- e-tickets ----------------------------------------------------------------------------------
ETICKETS_ISSUED = Counter(
    "guichet_etickets_issued_total",
    "E-tickets issued (one per seat of each confirmed purchase), by sale.",
    ["sale"],
)
ETICKET_SCANS = Counter(
    "guichet_eticket_scans_total",
    "Ticket scans at the gates, by outcome (accepted, refused).",
    ["outcome"],
)
ETICKET_SCAN_REFUSALS = Counter(
    "guichet_eticket_scan_refusals_total",
    "Refused ticket scans by reason (malformed, forged, expired, unknown, already_used).",
    ["reason"],
)
# Programme — tickets
PROGRAMME_TICKETS = Counter(
    "guichet_programme_tickets_total",
    "State programme ticket acts by programme and act (assigned, withdrawn, reassigned, "
    "returned to the central pool, committed, used).",
    ["programme", "act"],
)
PROGRAMME_DOUBLE_BENEFIT = Counter(
    "guichet_programme_double_benefit_refusals_total",
    "Designations refused or ranks skipped because the person already benefits from another "
    "State programme of the games, by programme and path (lottery, designation).",
    ["programme", "path"],
)
SHOP_SOLD_OUT = Gauge(
    "guichet_shop_sold_out_sessions",
    "Sessions of a sale with no seat left in any category.",
    ["sale"],
    multiprocess_mode="livemax",
)


def shop_levels(sale: str, stock: dict[str, int], sessions: Iterable[str]) -> None:
    """Refresh the seats-left gauges of a sale from a stock reading."""
    left: dict[str, int] = dict.fromkeys(sessions, 0)
    for item, seats in stock.items():
        session = item.partition(":")[0]
        left[session] = left.get(session, 0) + max(0, seats)
    for session, seats in left.items():
        SHOP_SEATS_LEFT.labels(sale, session).set(seats)
    SHOP_SOLD_OUT.labels(sale).set(sum(1 for seats in left.values() if seats == 0))


# Programme — people (label `programme`: programmes are created by the central role, a few)
PROGRAMME_CANDIDATES = Counter(
    "guichet_programme_candidates_registered_total",
    "Candidates registered in a State programme (eligible, with consent), by programme.",
    ["programme"],
)
PROGRAMME_REGISTRATION_REFUSALS = Counter(
    "guichet_programme_registration_refusals_total",
    "Refused candidate registrations, by reason (already_registered, invalid, criteria, "
    "no_lottery, lottery_closed, no_group, not_your_group, no_programme, retention_over, …).",
    ["reason"],
)
PROGRAMME_NAMES_PURGED = Counter(
    "guichet_programme_names_purged_total",
    "Printed names (their ciphertexts) erased by a programme's purge, by programme.",
    ["programme"],
)

# Audit log (label `family`: the prefix of a chain's tag, bounded by AUDIT_FAMILIES)
AUDIT_FAMILIES = frozenset({"room", "draw", "sale", "taj", "audit"})
AUDIT_RECORDS = Gauge(
    "guichet_audit_records",
    "Records in the audit chains, by chain family (room, draw, sale, taj, audit; other), read "
    "from Redis at each anchor round (every worker reads the same chains).",
    ["family"],
    multiprocess_mode="livemax",
)
AUDIT_ANCHORS = Counter(
    "guichet_audit_anchors_total",
    "Anchor rounds by result (appended, stale: another signer appended first, "
    "unchanged: no chain moved).",
    ["result"],
)
AUDIT_ANCHOR_AGE = Gauge(
    "guichet_audit_anchor_age_seconds",
    "0 while a signed anchor covers every audit chain's head; else seconds since the latest "
    "anchor (a chain no longer continues its anchored head: nothing is signed over it).",
    multiprocess_mode="livemax",
)


def audit_family(tag: str) -> str:
    """The bounded family of a chain's tag: ``room:x`` → room; unknown prefixes → other."""
    family = tag.partition(":")[0]
    return family if family in AUDIT_FAMILIES else "other"


# --- build --------------------------------------------------------------------------------
BUILD_INFO = Gauge(
    "guichet_build_info",
    "Constant 1, labelled with the running version.",
    ["version", "python"],
    multiprocess_mode="max",
)


def mark_build_info() -> None:
    BUILD_INFO.labels(__version__, platform.python_version()).set(1)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


# --- per-request accounting at dict cost ----------------------------------------------------
# A Prometheus update takes a lock (and in multiprocess mode writes an mmap); four of them per
# request cost ~7 µs here, a quarter of a whole bare request. So each request only bumps a
# dict entry; the counts reach the Prometheus counter at every flush (every 250 ms from the
# loop-lag probe, and before every /metrics exposition), and request latency is observed for
# one request in LATENCY_SAMPLE_EVERY (an unbiased sample: percentiles stay right; use
# guichet_http_requests_total, which is exact, for rates).
LATENCY_SAMPLE_EVERY = 4


class HttpTally:
    """This process's not-yet-flushed request counts and its in-flight count."""

    __slots__ = ("counts", "in_flight", "requests")

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        self.in_flight = 0
        self.requests = 0

    def sample(self) -> bool:
        """Count one request; True when its latency should be observed."""
        self.requests += 1
        return self.requests % LATENCY_SAMPLE_EVERY == 0

    def done(self, route: str, method: str, status: int) -> None:
        key = (route, method, status)
        self.counts[key] = self.counts.get(key, 0) + 1

    def flush(self) -> None:
        pending, self.counts = self.counts, {}
        for (route, method, status), n in pending.items():
            http_children(route, method, status)[0].inc(n)
        HTTP_IN_FLIGHT.set(self.in_flight)
        flush_gc_pauses()


HTTP = HttpTally()


@functools.lru_cache(maxsize=4096)
def http_children(route: str, method: str, status: int) -> tuple[Counter, Histogram]:
    """The labelled children for one request shape, looked up once (labels are bounded)."""
    return HTTP_REQUESTS.labels(route, method, status_class(status)), HTTP_LATENCY.labels(route)


def exposition() -> tuple[bytes, str]:
    """The Prometheus text for this process, or for all workers in multiprocess mode.

    Call :meth:`HttpTally.flush` first (on the event loop) for this process's latest counts.
    """
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def embedded_valkey_restarted() -> None:
    """Count a restart of the embedded Valkey (from the serving process, not a worker).

    With several workers the serving process imported this module before the multiprocess
    folder existed, so its module-level counter lives in memory where /metrics (served by the
    workers) cannot see it; then the count goes to a counter built on the shared folder.
    """
    if os.environ.get(MULTIPROC_ENV):
        _shared_restarts().inc()
    else:
        EMBEDDED_VALKEY_RESTARTS.inc()


@functools.cache
def _shared_restarts() -> Counter:
    previous = values.ValueClass
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    try:
        return Counter(*_RESTARTS, registry=None)
    finally:
        values.ValueClass = previous


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (multiprocess mode)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


#: Collections' pauses not yet observed, by generation: the GC callback only appends here
#: (a float, no lock); :meth:`HttpTally.flush` moves them into :data:`GC_PAUSES`. Observing in
#: the callback itself could deadlock: in multiprocess mode prometheus-client holds one
#: non-reentrant lock while it allocates, and a collection can start right then.
_GC_PENDING: tuple[list[float], list[float], list[float]] = ([], [], [])
_GC_PENDING_MAX = 10_000  # per generation between two flushes (one every 250 ms)


def watch_gc() -> None:
    """Time every collection's pause for :data:`GC_PAUSES` (once per process)."""
    started = 0.0

    def on_gc(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
            return
        pending = _GC_PENDING[min(2, info["generation"])]
        if len(pending) < _GC_PENDING_MAX:
            pending.append(time.perf_counter() - started)

    if not any(getattr(cb, "__qualname__", "") == on_gc.__qualname__ for cb in gc.callbacks):
        gc.callbacks.append(on_gc)


def flush_gc_pauses() -> None:
    """Observe the pauses the GC callback noted since the last flush."""
    for generation, pending in enumerate(_GC_PENDING):
        if pending:
            noted = pending[:]
            del pending[: len(noted)]
            child = GC_PAUSES.labels(str(generation))
            for pause in noted:
                child.observe(pause)


async def probe_loop_lag(interval_s: float = 0.25) -> None:
    """Measure how late a timer fires: the event loop's responsiveness, for ops."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(interval_s)
        LOOP_LAG.set(max(0.0, loop.time() - start - interval_s))
        HTTP.flush()


# Programme — gauges from Redis (programme/monitor.py): set by every worker on a timer and by
# the writer after its act; the value set last, by whichever worker, is the freshest reading.
PROGRAMME_TERMS = Gauge(
    "guichet_programme_invariant_tickets",
    "State programme tickets of a games by term of the invariant (loaded = pool + allocated "
    "+ assigned + used): loaded, pool, allocated (to programmes, not yet assigned), assigned, "
    "used.",
    ["games", "term"],
    multiprocess_mode="livemostrecent",
)
PROGRAMME_UNASSIGNED = Gauge(
    "guichet_programme_unassigned_tickets",
    "Tickets allocated to a programme and not yet assigned to a beneficiary (reclaimed to the "
    "central pool on its reclaim date).",
    ["programme"],
    multiprocess_mode="livemostrecent",
)
PROGRAMME_ACTS = Gauge(
    "guichet_programme_acts",
    "A programme's acts so far, from Redis: allocated, assigned, withdrawn, reassigned, "
    "returned (to the pool after a withdrawal), reclaimed, candidates, purged (names erased).",
    ["programme", "act"],
    multiprocess_mode="livemostrecent",
)
PROGRAMME_CONSENTS_MISSING = Gauge(
    "guichet_programme_consents_missing",
    "Designated minors of a programme still without their legal guardian's consent (no "
    "ticket is issued to them until it is recorded).",
    ["programme"],
    multiprocess_mode="livemostrecent",
)
PROGRAMME_RECLAIM_AT = Gauge(
    "guichet_programme_reclaim_timestamp_seconds",
    "When a programme's unassigned tickets return to the central pool (00:00 Paris on its "
    "reclaim date, as a UNIX time).",
    ["programme"],
    multiprocess_mode="livemostrecent",
)
