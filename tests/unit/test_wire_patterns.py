"""Patterns of outside strings mean the whole string: no slug (or any patterned field) lets a
control character through, not even the one trailing newline Python's ``$`` would allow."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

import msgspec
import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

import guichet.app  # noqa: F401  (imports every wire type)
from guichet import errors, webio, wire

CONTROL = st.sampled_from([chr(c) for c in [*range(0x20), 0x7F]])
SLUGS = st.from_regex(wire.SLUG, fullmatch=True)


def with_control(slug: str, char: str, at: int) -> str:
    at %= len(slug) + 1
    return slug[:at] + char + slug[at:]


def wire_types() -> Iterator[type[Any]]:
    seen: set[type[Any]] = set()
    todo: list[type[Any]] = [wire.Base, wire.Reply]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
                yield sub


def patterned_fields() -> list[tuple[str, str]]:
    """(``Type.field``, pattern) of every string field with a pattern, anywhere in a wire type."""
    found: dict[str, str] = {}

    def walk(where: str, info: Any) -> None:
        if isinstance(info, msgspec.inspect.StrType) and info.pattern is not None:
            found[where] = info.pattern
        if isinstance(info, msgspec.inspect.Metadata):  # Meta(description=…) wraps the type
            walk(where, info.type)
        for name in ("item_type", "key_type", "value_type"):
            if hasattr(info, name):
                walk(where + "[]", getattr(info, name))
        for name in ("types", "item_types"):
            for i, sub in enumerate(getattr(info, name, ())):
                walk(f"{where}|{i}", sub)

    for typ in wire_types():
        info = msgspec.inspect.type_info(typ)
        for field in getattr(info, "fields", ()):
            walk(f"{typ.__qualname__}.{field.name}", field.type)
    return sorted(found.items())


PATTERNED = patterned_fields()


def test_slugs_and_other_patterns_are_found() -> None:
    assert any(p == wire.SLUG for _, p in PATTERNED)
    assert len({p for _, p in PATTERNED}) >= 5


@pytest.mark.parametrize(("field", "pattern"), PATTERNED, ids=[f for f, _ in PATTERNED])
def test_every_pattern_is_whole(field: str, pattern: str) -> None:
    assert pattern.startswith("^"), field
    assert pattern.endswith(wire.whole("")[1:]), field  # built with wire.whole


@given(data=st.data())
def test_no_patterned_field_takes_a_trailing_newline(data: st.DataObject) -> None:
    field, pattern = data.draw(st.sampled_from(PATTERNED))
    good = data.draw(st.from_regex(pattern, fullmatch=True))
    constrained: Any = msgspec.defstruct(  # a body with the field's own constraint
        "One", [("v", Annotated[str, msgspec.Meta(pattern=pattern)])]
    )
    assert msgspec.json.decode(msgspec.json.encode({"v": good}), type=constrained).v == good
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(msgspec.json.encode({"v": good + "\n"}), type=constrained)
    assert re.search(pattern, good + "\n") is None, field


@given(slug=SLUGS, char=CONTROL, at=st.integers(0, 64))
def test_no_slug_with_a_control_char_is_valid(slug: str, char: str, at: int) -> None:
    bad = with_control(slug, char, at)
    assert wire.valid_slug(slug)
    assert not wire.valid_slug(bad)
    with pytest.raises(errors.Problem):  # a body field of type Slug: 422 naming it
        wire.decode(
            msgspec.json.encode({"sale": bad}), msgspec.defstruct("B", [("sale", wire.Slug)])
        )


@given(slug=SLUGS, char=CONTROL, at=st.integers(0, 64))
def test_slug_param_refuses_a_control_char(slug: str, char: str, at: int) -> None:
    request = make_mocked_request("GET", "/", match_info={"draw": slug})
    assert webio.slug_param(request, "draw") == slug
    bad = make_mocked_request("GET", "/", match_info={"draw": with_control(slug, char, at)})
    with pytest.raises(errors.Problem):
        webio.slug_param(bad, "draw")
