from __future__ import annotations

from guichet import refusals

GONE = refusals.Refusal(409, "session-ended", "Session ended")


def test_a_refusal_becomes_its_problem_with_the_detail() -> None:
    problem = refusals.problem(GONE, "left", retry_after_s=3, context={"room": "r"})
    body = problem.body("/v1/x")
    assert (body.status, body.type, body.title, body.detail) == (
        409,
        "https://guichet.dev/problems/session-ended",
        "Session ended",
        "left",
    )
    assert body.context == {"room": "r"}
    assert problem.headers == {"Retry-After": "3"}
