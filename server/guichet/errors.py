"""RFC 9457 problem details: the one shape of every error Guichet returns.

Domain code raises :class:`Problem` (or a subclass); the middleware in ``app.py`` turns it,
aiohttp's HTTP errors and msgspec validation errors into ``application/problem+json``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://guichet.dev/problems/"
#: Characters of an RFC 3986 path kept as they are in ``instance``; all else is %-encoded.
_PATH_SAFE = "/-._~!$&'()*+,;=:@"


class FieldError(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One offending field: a JSON path such as ``items[0].count`` and what is wrong."""

    field: str
    detail: str


class ProblemBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The RFC 9457 body. ``type`` is stable; ``detail`` is for humans."""

    type: str
    title: str
    status: int
    detail: str
    instance: str = ""
    errors: list[FieldError] = []
    retry_after_s: int | None = None
    #: Machine-readable details of a refusal (e.g. the rule, the item, the purchase window).
    context: dict[str, Any] | None = None


class Problem(Exception):
    """An error answer. ``slug`` names the stable problem type; ``headers`` go out too."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        retry_after_s: int | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.context = context
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.headers = dict(headers or {})
        self.retry_after_s = retry_after_s
        if retry_after_s is not None:
            self.headers["Retry-After"] = str(retry_after_s)

    def body(self, instance: str) -> ProblemBody:
        return ProblemBody(
            type=TYPE_BASE + self.slug,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            errors=self.errors,
            retry_after_s=self.retry_after_s,
            context=self.context,
        )


def instance_of(path: str) -> str:
    """The request path as a safe relative reference for ``instance``: percent-encoded (a
    ``\\``, a control character or a ``%`` cannot reach a browser as such) and with one
    leading slash, so ``//evil.example/x`` never reads as a scheme-relative URL."""
    encoded = quote(path.encode("utf-8", "surrogateescape"), safe=_PATH_SAFE)
    return "/" + encoded.lstrip("/")


def invalid_body(errors: list[FieldError], detail: str | None = None) -> Problem:
    return Problem(
        422,
        "validation",
        "Invalid request body",
        detail or "; ".join(f"{e.field}: {e.detail}" for e in errors),
        errors=errors,
    )


def malformed(detail: str) -> Problem:
    return Problem(400, "malformed", "Malformed request", detail)


def unauthorized(detail: str, error: str = "invalid_token") -> Problem:
    return Problem(
        401,
        "unauthorized",
        "Authentication required",
        detail,
        headers={"WWW-Authenticate": f'Bearer error="{error}"'},
    )


def forbidden(detail: str) -> Problem:
    return Problem(
        403,
        "forbidden",
        "Not allowed",
        detail,
        headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
    )


def too_many(detail: str, retry_after_s: int) -> Problem:
    return Problem(429, "rate-limited", "Too many requests", detail, retry_after_s=retry_after_s)


def from_validation_error(exc: msgspec.ValidationError) -> Problem:
    """``Expected `int` >= 1 - at `$.items[0].count``` → field ``items[0].count``."""
    message = str(exc)
    detail, sep, path = message.rpartition(" - at `")
    if not sep:
        detail, path = message, "$"
    field = path.rstrip("`").removeprefix("$").lstrip(".")
    if not field and detail.startswith("`") and detail.count("`") >= 2:
        field = detail.split("`")[1]  # a check in __post_init__ names its field first
    unknown = "Object contains unknown field `"
    if detail.startswith(unknown):
        name = detail[len(unknown) :].rstrip("`")
        field = f"{field}.{name}" if field else name
        detail = "unknown field"
    elif detail.startswith("Object missing required field `"):
        name = detail.split("`")[1]
        field = f"{field}.{name}" if field else name
        detail = "required field is missing"
    detail = detail.replace("`", "")
    return invalid_body([FieldError(field=field or "(body)", detail=detail)])


def not_found(detail: str) -> Problem:
    return Problem(404, "not-found", "Not found", detail)


def conflict(slug: str, title: str, detail: str, retry_after_s: int | None = None) -> Problem:
    """409: the request is well-formed but the resource's state does not allow it now."""
    return Problem(409, slug, title, detail, retry_after_s=retry_after_s)
