"""The State programme "Tous aux Jeux", for its central coordinator and auditors."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from dashboards.common import PER_SECOND, Row, board, label_variable, series

UID = "guichet-programme"
G = '{games=~"$games"}'
P = '{programme=~"$programme"}'
ACTS = '{programme=~"$programme",act=~"allocated|assigned|withdrawn|reassigned|returned|reclaimed"}'


def build() -> Dashboard:
    pool = Row(100, "Pool and invariant ($games)", [
        series(101, "Tickets by term (loaded = pool + allocated + assigned + used)", "short",
               (f"max by (games, term) (guichet_programme_invariant_tickets{G})",
                "{{games}} {{term}}"),
               width=24,
               description="`guichet programme audit` checks the same sum per session."),
    ])  # fmt: skip
    programmes = Row(200, "Programmes ($programme)", [
        series(201, "Allocated, not yet assigned", "short",
               (f"max by (programme) (guichet_programme_unassigned_tickets{P})", "{{programme}}"),
               description="Returns to the pool on the reclaim date "
                           "(GuichetProgrammeUnassignedNearReclaim in the last 7 days)."),
        series(202, "Time to the reclaim date", "s",
               (f"max by (programme) (guichet_programme_reclaim_timestamp_seconds{P}) - time()",
                "{{programme}}")),
        series(203, "Acts so far", "short",
               (f"max by (programme, act) (guichet_programme_acts{ACTS})",
                "{{programme}} {{act}}")),
        series(204, "Designated minors without guardian consent", "short",
               (f"max by (programme) (guichet_programme_consents_missing{P})", "{{programme}}")),
    ])  # fmt: skip
    people = Row(300, "People and tickets ($programme)", [
        series(301, "Candidates registered", PER_SECOND,
               (f"sum by (programme) (rate(guichet_programme_candidates_registered_total{P}[5m]))",
                "{{programme}}")),
        series(302, "Registrations refused by reason (all programmes)", PER_SECOND,
               ("sum by (reason) (rate(guichet_programme_registration_refusals_total[5m]))",
                "{{reason}}")),
        series(303, "Ticket acts", PER_SECOND,
               (f"sum by (programme, act) (rate(guichet_programme_tickets_total{P}[5m]))",
                "{{programme}} {{act}}")),
        series(304, "Double benefits refused", PER_SECOND,
               (f"sum by (programme, path) "
                f"(rate(guichet_programme_double_benefit_refusals_total{P}[5m]))",
                "{{programme}} {{path}}")),
        series(305, "Ticket links waiting for the mailer", "short",
               ('max by (sale, state) (guichet_outbox_backlog{sale=~"programme:$games"})',
                "{{sale}} {{state}}")),
        series(306, "Printed names purged", "short",
               (f"sum by (programme) (increase(guichet_programme_names_purged_total{P}[1h]))",
                "{{programme}}")),
    ])  # fmt: skip
    audit = Row(400, "Audit log", [
        series(401, "Age of the latest anchor when a chain is not covered", "s",
               ("max(guichet_audit_anchor_age_seconds)", "anchor age"),
               description="0 while a signed anchor covers every chain. Pages above 15 min "
                           "(GuichetAuditAnchorStale)."),
        series(402, "Records by chain family", "short",
               ("max by (family) (guichet_audit_records)", "{{family}}")),
        series(403, "Anchor rounds by result", PER_SECOND,
               ("sum by (result) (rate(guichet_audit_anchors_total[5m]))", "{{result}}")),
    ])  # fmt: skip
    return board(
        UID,
        "Guichet — State programme",
        "Tous aux Jeux: the pool's invariant, each programme's tickets and dates, the audit log.",
        [
            label_variable("games", "guichet_programme_invariant_tickets", "Games"),
            label_variable("programme", "guichet_programme_unassigned_tickets", "Programme"),
        ],
        [pool, programmes, people, audit],
    )
