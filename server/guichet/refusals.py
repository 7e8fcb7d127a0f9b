"""Refusal tables: one per component, mapping a script's refusal code to its problem.

A component declares ``REFUSALS: dict[Code, Refusal]`` with ``Code`` the ``Literal`` of its
script's refusal codes, so mypy flags a missing or misspelt code; a handler turns the code it
got into an :class:`errors.Problem` with :func:`problem`, adding the request's detail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, get_args

import msgspec

from guichet import errors

F = TypeVar("F")


@dataclass(frozen=True)
class Refusal:
    """What a refusal code means over HTTP: status and stable problem type (slug, title)."""

    status: int
    slug: str
    title: str


@dataclass(frozen=True)
class Explained:
    """A refusal's detail for humans, its machine-readable context and offending fields."""

    detail: str
    context: dict[str, Any] | None = None
    errors: list[errors.FieldError] | None = None


@dataclass(frozen=True)
class Explaining(Refusal, Generic[F]):
    """A refusal whose detail is built from the object's id and the script's facts ``F``
    (the shop's and the draw's tables)."""

    explain: Callable[[str, F], Explained]

    def problem(self, subject: str, facts: F) -> errors.Problem:
        e = self.explain(subject, facts)
        return problem(self, e.detail, context=e.context, field_errors=e.errors)


def problem(
    refusal: Refusal,
    detail: str,
    *,
    retry_after_s: int | None = None,
    context: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    field_errors: list[errors.FieldError] | None = None,
) -> errors.Problem:
    """The problem answering ``refusal``, with this request's ``detail`` (and context)."""
    return errors.Problem(
        refusal.status,
        refusal.slug,
        refusal.title,
        detail,
        retry_after_s=retry_after_s,
        context=context,
        headers=headers,
        errors=field_errors,
    )


def code_of(raw: bytes, codes: Any, script: str) -> Any:
    """A script's code, checked against ``codes`` (the ``Literal`` of its codes; the named
    tuple it goes into types it). A code the script's header does not list is a bug: an
    error (500, logged with its traceback), never a refusal sent to the client."""
    try:
        return msgspec.convert(raw.decode(), codes)
    except msgspec.ValidationError:
        raise RuntimeError(f"{script}.lua answered an unknown code {raw!r}") from None


def check_complete(table: dict[Any, Any], codes: Any, component: str) -> None:
    """At import: every code of the ``Literal`` has its problem (mypy checks the keys' spelling;
    this, that none is missing)."""
    if missing := set(get_args(codes)) - set(table):
        raise AssertionError(f"{component} refusals without a problem: {sorted(missing)}")
