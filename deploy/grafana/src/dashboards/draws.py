"""Draws and waves, for whoever runs the lottery: registrations, the run, windows, notices."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.common import PER_SECOND, Row, board, label_variable, series, single

UID = "guichet-draws"
D = '{draw=~"$draw"}'
S = '{sale=~"$sale"}'
HELD = '{sale=~"$sale",outcome="held"}'
NO_WINDOW = '{sale=~"$sale",outcome="window"}'


def build() -> Dashboard:
    registration = Row(100, "Registration ($draw)", [
        series(101, "New entries by stratum", PER_SECOND,
               (f"sum by (draw, stratum) (rate(guichet_draw_entries_total{D}[5m]))",
                "{{draw}} {{stratum}}")),
        series(102, "Entries in the last hour by stratum", "short",
               (f"sum by (draw, stratum) (increase(guichet_draw_entries_total{D}[1h]))",
                "{{draw}} {{stratum}}")),
        series(103, "Refused registrations by reason (all draws)", PER_SECOND,
               ("sum by (reason) (rate(guichet_draw_registration_rejections_total[5m]))",
                "{{reason}}"),
               description="invalid or bad_stratum above 5/s: GuichetDrawRegistrationRejections."),
        series(104, "Withdrawals", PER_SECOND,
               (f"sum by (draw) (rate(guichet_draw_withdrawals_total{D}[5m]))", "{{draw}}")),
    ])  # fmt: skip
    run = Row(200, "Run and waves ($draw)", [
        single(201, "Run progress", "percentunit",
               f"max(guichet_draw_run_progress_ratio{D})",
               description="0 to 1: scan half, store half; 1 once the transcript is published."),
        single(202, "Ranked entries", "short", f"sum(guichet_draw_ranked_entries{D})"),
        single(203, "Windows given", "short", f"sum(guichet_draw_windows_assigned{D})"),
        single(204, "Waves released", "short", f"sum(guichet_draw_waves_released{D})"),
        series(205, "Run progress by draw", "percentunit",
               (f"max by (draw) (guichet_draw_run_progress_ratio{D})", "{{draw}}")),
        series(206, "Windows given by draw", "short",
               (f"max by (draw) (guichet_draw_windows_assigned{D})", "{{draw}}"),
               description="Steps up by the wave's size at each release-wave."),
    ])  # fmt: skip
    outbox = Row(300, "Window notices ($sale)", [
        series(301, "Outbox backlog: undelivered and pending", "short",
               (f"max by (sale, state) (guichet_outbox_backlog{S})", "{{sale}} {{state}}"),
               description="undelivered: not read by the mailer yet; pending: read, not "
                           "acknowledged (GuichetOutboxPendingPiling above 10 000)."),
        series(302, "Oldest due notice not acknowledged", "s",
               (f"max by (sale) (guichet_outbox_lag_seconds{S})", "{{sale}}"),
               description="Normal: under a minute while the mailer runs. Pages above 15 min "
                           "(GuichetOutboxLagging)."),
    ])  # fmt: skip
    conversion = Row(400, "Windows at work ($sale)", [
        series(401, "Holds: held vs refused for want of a window", PER_SECOND,
               (f"sum by (sale) (rate(guichet_shop_holds_total{HELD}[5m]))", "held {{sale}}"),
               (f"sum by (sale) (rate(guichet_shop_holds_total{NO_WINDOW}[5m]))",
                "no window {{sale}}")),
        series(402, "Purchases confirmed", PER_SECOND,
               (f"sum by (sale) (rate(guichet_shop_confirms_total{S}[5m]))", "{{sale}}")),
    ])  # fmt: skip
    return board(
        UID,
        "Guichet — draws and waves",
        "Registration, the draw's run, the waves of purchase windows and their notices.",
        [
            label_variable("draw", "guichet_draw_ranked_entries", "Draw"),
            label_variable("sale", "guichet_outbox_lag_seconds", "Sale (outbox)"),
        ],
        [registration, run, outbox, conversion],
    )
