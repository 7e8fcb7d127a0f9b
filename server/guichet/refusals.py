"""Refusal tables: one per component, mapping a script's refusal code to its problem.

A component declares ``REFUSALS: dict[Code, Refusal]`` with ``Code`` the ``Literal`` of its
script's refusal codes, so mypy flags a missing or misspelt code; a handler turns the code it
got into an :class:`errors.Problem` with :func:`problem`, adding the request's detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from guichet import errors


@dataclass(frozen=True)
class Refusal:
    """What a refusal code means over HTTP: status and stable problem type (slug, title)."""

    status: int
    slug: str
    title: str


def problem(
    refusal: Refusal,
    detail: str,
    *,
    retry_after_s: int | None = None,
    context: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
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
    )
