from __future__ import annotations

from typing import Annotated

import msgspec
import pytest

from guichet import errors, wire


class Item(wire.Base):
    session: str
    count: Annotated[int, msgspec.Meta(ge=1, le=30)]


class Order(wire.Base):
    items: list[Item]


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        (b'{"items": [{"session": "s", "count": 0}]}', "items[0].count", "Expected int >= 1"),
        (b'{"items": [{"session": "s", "count": "3"}]}', "items[0].count", "Expected int, got str"),
        (b'{"items": [{"session": "s", "count": 1, "x": 1}]}', "items[0].x", "unknown field"),
        (b'{"items": [{"count": 1}]}', "items[0].session", "required field is missing"),
        (b'{"itemz": []}', "itemz", "unknown field"),
        (b"[]", "(body)", "Expected object, got array"),
    ],
)
def test_validation_errors_name_the_field(body: bytes, field: str, detail: str) -> None:
    with pytest.raises(errors.Problem) as info:
        wire.decode(body, Order)
    problem = info.value
    assert problem.status == 422
    assert problem.errors[0].field == field
    assert problem.errors[0].detail.startswith(detail)


def test_malformed_json_is_400() -> None:
    with pytest.raises(errors.Problem) as info:
        wire.decode(b'{"items": [', Order)
    assert info.value.status == 400
    assert info.value.slug == "malformed"


def test_problem_body_is_rfc9457() -> None:
    problem = errors.too_many("slow down", retry_after_s=3)
    body = msgspec.to_builtins(problem.body("/x"))
    assert body == {
        "type": "https://guichet.dev/problems/rate-limited",
        "title": "Too many requests",
        "status": 429,
        "detail": "slow down",
        "instance": "/x",
        "retry_after_s": 3,
    }
    assert problem.headers["Retry-After"] == "3"
