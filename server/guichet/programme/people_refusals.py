"""What the people scripts (register, group, mobility, candidate updates, purge) refuse, and
the one table of the problems those refusals become (HTTP routes) — the CLI words them too."""

from __future__ import annotations

from typing import Literal

from guichet import errors
from guichet.refusals import Refusal, check_complete, problem

RegisterCode = Literal[
    "created", "no_programme", "stale", "invalid", "criteria", "not_your_group",
    "retention_over", "no_group", "no_lottery", "lottery_closed", "already_registered",
]  # fmt: skip
GroupCode = Literal["created", "again", "no_programme", "group_exists", "leader_busy"]
MobilityCode = Literal["ok", "no_group", "not_your_group"]
UpdateCode = Literal["ok", "missing", "stale", "not_your_group"]
PurgeCode = Literal["ok", "no_programme", "stale", "early"]
#: Every refusal a people act can end with (the keys of :data:`REFUSALS`); also the bounded
#: ``reason`` label of ``guichet_programme_registration_refusals_total``.
Refused = Literal[
    "no_programme", "not_your_group", "retention_over", "no_group", "no_lottery",
    "lottery_closed", "already_registered", "group_exists", "leader_busy", "no_candidate",
    "guardian_recorded", "early", "invalid", "criteria", "unknown_group",
]  # fmt: skip
#: Where a refusal points in the body (a 422 names its field).
FIELDS: dict[Refused, str] = {"no_group": "group", "no_lottery": "lottery", "criteria": "criteria"}

REFUSALS: dict[Refused, Refusal] = {
    "no_programme": Refusal(404, "not-found", "Not found"),
    "not_your_group": Refusal(403, "not-your-group", "Not the leader of this group"),
    "retention_over": Refusal(409, "retention-over", "Retention period over"),
    "no_group": Refusal(422, "validation", "Invalid request body"),
    "no_lottery": Refusal(422, "validation", "Invalid request body"),
    "lottery_closed": Refusal(409, "lottery-closed", "Candidate list closed"),
    "already_registered": Refusal(409, "already-registered", "Already a candidate"),
    "group_exists": Refusal(409, "group-exists", "Group led by another account"),
    "leader_busy": Refusal(409, "leader-busy", "Account leads another group"),
    "no_candidate": Refusal(404, "not-found", "Not found"),
    "guardian_recorded": Refusal(409, "guardian-recorded", "Guardian consent already recorded"),
    "early": Refusal(409, "retention-not-over", "Retention period not over"),
    "invalid": Refusal(422, "validation", "Invalid request body"),
    "criteria": Refusal(422, "validation", "Invalid request body"),
    "unknown_group": Refusal(404, "not-found", "Not found"),
}
check_complete(REFUSALS, Refused, "programme people")


class PeopleRefused(Exception):
    """A people act refused: its code and a detail for humans (no personal data)."""

    def __init__(self, code: Refused, detail: str) -> None:
        super().__init__(detail)
        self.code: Refused = code
        self.detail = detail

    def problem(self) -> errors.Problem:
        field = FIELDS.get(self.code)
        found = None if field is None else [errors.FieldError(field=field, detail=self.detail)]
        return problem(REFUSALS[self.code], self.detail, field_errors=found)
