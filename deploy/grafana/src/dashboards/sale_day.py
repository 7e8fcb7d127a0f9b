"""Sale day, for the ops on duty: is the service healthy, does the room admit, does the shop
sell."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.common import PER_SECOND, Row, board, label_variable, series, single

UID = "guichet-sale-day"
R = '{room=~"$room"}'
S = '{sale=~"$sale"}'


def build() -> Dashboard:
    service = Row(100, "Service", [
        single(101, "Ready (every worker)", "bool_yes_no", "min(guichet_ready)",
               description="0: a worker cannot use Redis, misses a script or has no identity "
                           "provider keys from security.jwks_url yet (GuichetNotReady)."),
        single(102, "5xx share (5 min)", "percentunit",
               'sum(rate(guichet_http_requests_total{status="5xx"}[5m]))'
               " / sum(rate(guichet_http_requests_total[5m]))",
               description="Pages above 1 % (GuichetHigh5xx)."),
        single(103, "Requests in flight", "short", "sum(guichet_http_requests_in_flight)"),
        single(104, "Event loop lag (worst worker)", "s", "max(guichet_event_loop_lag_seconds)",
               description="Normal: a few ms. Above 100 ms: GuichetEventLoopLag."),
        series(105, "Requests by route and status", "reqps",
               ("sum by (route, status) (rate(guichet_http_requests_total[1m]))",
                "{{route}} {{status}}")),
        series(106, "HTTP p99 by route (1 request in 4 sampled)", "s",
               ("histogram_quantile(0.99, sum by (le, route) "
                "(rate(guichet_http_request_duration_seconds_bucket[5m])))", "{{route}}")),
        series(107, "Redis p99 by operation", "s",
               ("histogram_quantile(0.99, sum by (le, op) "
                "(rate(guichet_redis_call_duration_seconds_bucket[5m])))", "{{op}}"),
               description="Normal: under 5 ms. Above 50 ms: GuichetSlowRedis."),
        series(108, "Redis errors by operation and kind", PER_SECOND,
               ("sum by (op, kind) (rate(guichet_redis_errors_total[1m]))", "{{op}} {{kind}}"),
               description="Normal: none."),
        series(109, "Problems answered, by type", PER_SECOND,
               ("sum by (type) (rate(guichet_http_problems_total[1m]))", "{{type}}")),
        series(110, "Refused bearer tokens, by reason", PER_SECOND,
               ("sum by (reason) (rate(guichet_auth_failures_total[1m]))", "{{reason}}")),
        series(111, "Identity provider key fetches, by outcome (security.jwks_url)", PER_SECOND,
               ("sum by (outcome) (rate(guichet_jwks_fetches_total[5m]))", "{{outcome}}"),
               description="Empty without security.jwks_url. Normal: only ok, one per worker "
                           "every jwks_max_age_s. Others: GuichetJwksFetchFailing."),
        single(112, "Identity provider keys held (fewest)", "short", "min(guichet_jwks_keys)",
               description="Keys fetched from security.jwks_url; 0 before a first fetch "
                           "(the worker is not ready) or without jwks_url."),
        single(113, "Age of the provider's keys (oldest)", "s",
               "time() - min(guichet_jwks_last_success_timestamp_seconds > 0)",
               description="Since the last good fetch; above 30 min with failing fetches: "
                           "GuichetJwksFetchFailing."),
    ])  # fmt: skip
    room = Row(200, "Waiting room ($room)", [
        series(201, "Waiting and in the pre-queue", "short",
               (f"max by (room) (guichet_room_waiting{R})", "waiting {{room}}"),
               (f"max by (room) (guichet_room_prequeue{R})", "pre-queue {{room}}")),
        series(202, "Active sessions (never above max_active)", "short",
               (f"max by (room) (guichet_room_active_sessions{R})", "{{room}}")),
        series(203, "Admission rate: measured vs configured", PER_SECOND,
               (f"max by (room) (guichet_room_admission_rate{R})", "measured {{room}}"),
               (f"max by (room) (guichet_room_effective_rate{R})", "configured {{room}}"),
               description="Measured follows configured while people wait and sessions are "
                           "free; configured is 0 while paused."),
        series(204, "Numbers called (serving counter)", "short",
               (f"max by (room) (guichet_room_serving_number{R})", "{{room}}")),
        series(205, "Joins, admissions, idle expiries", PER_SECOND,
               (f"sum by (room, phase) (rate(guichet_room_joins_total{R}[1m]))",
                "joins {{room}} {{phase}}"),
               (f"sum by (room) (rate(guichet_room_admitted_total{R}[1m]))", "admitted {{room}}"),
               (f"sum by (room) (rate(guichet_room_sessions_expired_total{R}[1m]))",
                "expired {{room}}")),
        series(206, "Time in queue p50 / p95", "s",
               ("histogram_quantile(0.5, sum by (le, room) "
                f"(rate(guichet_room_time_in_queue_seconds_bucket{R}[5m])))", "p50 {{room}}"),
               ("histogram_quantile(0.95, sum by (le, room) "
                f"(rate(guichet_room_time_in_queue_seconds_bucket{R}[5m])))", "p95 {{room}}")),
        series(207, "Room refusals by reason (all rooms)", PER_SECOND,
               ("sum by (reason) (rate(guichet_room_rejections_total[1m]))", "{{reason}}"),
               description="rate_limit_* is normal at the opening; forged/malformed/other_room "
                           "above 10/s: GuichetRoomForgedTickets."),
        series(208, "Holds and entries refused for want of admission", PER_SECOND,
               ("sum by (reason) (rate(guichet_room_guard_refusals_total[1m]))", "{{reason}}")),
        series(209, "Open event streams", "short",
               ("sum(guichet_room_sse_clients)", "streams"),
               description="Warns above 15 000 (GuichetRoomSseSaturated)."),
        series(210, "Pacer ticks by outcome", PER_SECOND,
               ("sum by (outcome) (rate(guichet_room_pacer_ticks_total[1m]))", "{{outcome}}"),
               description="Normal: 5 ok per second per worker, no error."),
        series(211, "Queueing mode", "short",
               (f"max by (room, mode) (guichet_room_mode{R}) > 0", "{{room}}: {{mode}}"),
               description="fifo, shuffle-then-fifo, random, passthrough or reject; switched "
                           "live by PATCH or `guichet room set --mode` (docs/runbook.md)."),
        series(212, "Proof-of-work door: challenges and refusals", PER_SECOND,
               (f"sum by (outcome) (rate(guichet_room_challenges_total{R}[1m]))", "{{outcome}}"),
               (f"sum by (reason) (rate(guichet_room_challenge_failures_total{R}[1m]))",
                "refused: {{reason}}"),
               description="Empty while challenge_bits is 0. missing is the first visit of "
                           "each join; many wrong/forged/replayed: a bot at the door."),
        series(213, "Proof-of-work solve time p50 / p95 (reported by the page)", "s",
               ("histogram_quantile(0.5, sum by (le) "
                f"(rate(guichet_room_challenge_solve_seconds_bucket{R}[5m])))", "p50"),
               ("histogram_quantile(0.95, sum by (le) "
                f"(rate(guichet_room_challenge_solve_seconds_bucket{R}[5m])))", "p95"),
               description="What the difficulty costs real visitors; lower challenge_bits if "
                           "p95 passes a few seconds."),
        series(214, "Sessions revoked by the protected site", PER_SECOND,
               (f"sum by (room, reason) (rate(guichet_room_revocations_total{R}[1m]))",
                "{{room}} {{reason}}")),
    ])  # fmt: skip
    shop = Row(300, "Shop ($sale)", [
        series(301, "Holds by outcome", PER_SECOND,
               (f"sum by (sale, outcome) (rate(guichet_shop_holds_total{S}[1m]))",
                "{{sale}} {{outcome}}"),
               description="held, or the rule that refused it; stock = sold out."),
        series(302, "Confirms, releases, expiries", PER_SECOND,
               (f"sum by (sale) (rate(guichet_shop_confirms_total{S}[1m]))", "confirmed {{sale}}"),
               (f"sum by (sale) (rate(guichet_shop_releases_total{S}[1m]))", "released {{sale}}"),
               (f"sum by (sale) (rate(guichet_shop_expiries_total{S}[1m]))", "expired {{sale}}")),
        series(303, "Hold latency p50 / p99", "s",
               ("histogram_quantile(0.5, sum by (le, sale) "
                f"(rate(guichet_shop_hold_duration_seconds_bucket{S}[1m])))", "p50 {{sale}}"),
               ("histogram_quantile(0.99, sum by (le, sale) "
                f"(rate(guichet_shop_hold_duration_seconds_bucket{S}[1m])))", "p99 {{sale}}"),
               description="Warns above 250 ms at p99 (GuichetHoldsSlow)."),
        series(304, "Seats left (all sessions)", "short",
               (f"sum by (sale) (guichet_shop_seats_left{S})", "{{sale}}")),
        series(305, "Sold-out sessions", "short",
               (f"max by (sale) (guichet_shop_sold_out_sessions{S})", "{{sale}}")),
        series(306, "The 10 sessions with fewest seats left", "short",
               (f"bottomk(10, min by (sale, session) (guichet_shop_seats_left{S}))",
                "{{sale}} {{session}}")),
        series(307, "E-tickets issued", PER_SECOND,
               (f"sum by (sale) (rate(guichet_etickets_issued_total{S}[1m]))", "{{sale}}")),
        series(308, "Gate scans by outcome, refusals by reason", PER_SECOND,
               ("sum by (outcome) (rate(guichet_eticket_scans_total[1m]))", "{{outcome}}"),
               ("sum by (reason) (rate(guichet_eticket_scan_refusals_total[1m]))",
                "refused: {{reason}}")),
    ])  # fmt: skip
    return board(
        UID,
        "Guichet — sale day",
        "The service, the waiting rooms and the shop on sale day (docs/runbook.md).",
        [
            label_variable("room", "guichet_room_serving_number", "Room"),
            label_variable("sale", "guichet_shop_seats_left", "Sale"),
        ],
        [service, room, shop],
    )
