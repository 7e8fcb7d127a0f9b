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


def test_an_explaining_refusal_builds_its_detail_from_the_facts() -> None:
    stock = refusals.Explaining[int](
        409, "sold-out", "Not enough seats",
        lambda sale, left: refusals.Explained(f"{left} left in {sale}", context={"left": left}),
    )  # fmt: skip
    body = stock.problem("paris", 2).body("/v1/x")
    assert (body.status, body.detail, body.context) == (409, "2 left in paris", {"left": 2})


def test_a_table_missing_a_code_is_refused_at_import() -> None:
    from typing import Literal

    import pytest

    with pytest.raises(AssertionError, match=r"shop refusals without a problem: \['b'\]"):
        refusals.check_complete({"a": GONE}, Literal["a", "b"], "shop")
    refusals.check_complete({"a": GONE, "b": GONE}, Literal["a", "b"], "shop")
