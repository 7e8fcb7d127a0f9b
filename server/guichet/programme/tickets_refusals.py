"""What the designation and ticket scripts refuse, and the problem each refusal becomes
(slice "tickets": lotteries, designation, commitment, withdrawal)."""

from __future__ import annotations

from typing import Literal

from guichet.errors import Problem
from guichet.refusals import Refusal, check_complete, problem

Refused = Literal[
    "no_programme", "no_session", "exists", "closes_in_past", "no_lottery", "committed",
    "closed", "not_committed", "open", "run", "not_run", "not_candidate", "already_designated",
    "double_benefit", "no_allocation", "unknown", "withdrawn", "used",
    "guardian_consent_required", "too_late", "not_committed_ticket", "no_name", "not_your_group",
]  # fmt: skip

REFUSALS: dict[Refused, Refusal] = {
    "no_programme": Refusal(404, "not-found", "No such programme"),
    "no_session": Refusal(422, "unknown-session", "No such session"),
    "exists": Refusal(409, "lottery-exists", "The lottery exists"),
    "closes_in_past": Refusal(422, "closes-in-past", "The candidate list must close later"),
    "no_lottery": Refusal(404, "not-found", "No such lottery"),
    "committed": Refusal(409, "already-committed", "The lottery is already committed"),
    "closed": Refusal(409, "lottery-closed", "The candidate list has closed"),
    "not_committed": Refusal(409, "not-committed", "The lottery was not committed"),
    "open": Refusal(409, "lottery-open", "The candidate list has not closed yet"),
    "run": Refusal(409, "lottery-run", "The lottery has already run"),
    "not_run": Refusal(409, "lottery-not-run", "The lottery has not run yet"),
    "not_candidate": Refusal(409, "not-a-candidate", "Not an eligible candidate"),
    "already_designated": Refusal(409, "already-designated", "Already designated"),
    "double_benefit": Refusal(409, "double-benefit", "Already a beneficiary of another programme"),
    "no_allocation": Refusal(409, "no-allocation", "No allocated ticket left"),
    "unknown": Refusal(404, "ticket-unknown", "No such ticket"),
    "withdrawn": Refusal(409, "ticket-withdrawn", "The ticket was withdrawn"),
    "used": Refusal(409, "already-used", "The ticket was used"),
    "guardian_consent_required": Refusal(
        409, "guardian-consent-required", "A legal guardian's consent is required"),
    "too_late": Refusal(409, "too-late", "Too late to withdraw"),
    "not_committed_ticket": Refusal(
        409, "not-committed", "The charter is not accepted yet: no ticket is issued"),
    "no_name": Refusal(409, "name-missing", "No name recorded for this nominative ticket"),
    "not_your_group": Refusal(
        403, "not-your-group", "The ticket's beneficiary is not of the group you lead"),
}  # fmt: skip
check_complete(REFUSALS, Refused, "programme tickets")


class Refuse(Exception):
    """A script's refusal, with what the caller may be told."""

    def __init__(self, code: Refused, detail: str, context: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.code: Refused = code
        self.detail = detail
        self.context = context

    def problem(self) -> Problem:
        return problem(REFUSALS[self.code], self.detail, context=self.context)
