"""Wire types and codecs: every request/response body is a msgspec Struct deriving ``Base``.

Pure: no web framework here (models and the configuration import it); reading requests and
writing responses is :mod:`guichet.webio`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, TypeVar

import msgspec

from guichet import errors

T = TypeVar("T")

JSON_CONTENT_TYPE = "application/json"


def whole(body: str) -> str:
    """A pattern matching exactly ``body``, the same to msgspec (Python ``re.search``, whose
    ``$`` also matches before one final newline) and to JSON Schema (ECMA-262, where it does
    not): the lookahead refuses that newline. Every ``Meta(pattern=…)`` is built with this."""
    return f"^{body}$(?!\\n)"


#: Ids that ops choose (rooms, draws, sales): lower-case letters, digits and '-', key-safe.
SLUG = whole(r"[a-z0-9][a-z0-9-]{0,47}")
_SLUG_RE = re.compile(SLUG)
Slug = Annotated[str, msgspec.Meta(pattern=SLUG, description="lower-case letters, digits, '-'")]


def valid_slug(value: str) -> bool:
    return bool(_SLUG_RE.match(value))


#: What msgspec decodes as a ``datetime`` (RFC 3339, with its latitude of case and separator;
#: the models refuse a time without offset). Plain ``datetime`` is ``{"type": "string"}`` in
#: msgspec's JSON Schema, so an empty string would look valid: :data:`Instant` says it with a
#: pattern (not ``format: date-time``, whose validators refuse the space msgspec takes).
RFC3339 = whole(
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]"
    r":[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])"
)
Instant = Annotated[
    datetime,
    msgspec.Meta(extra_json_schema={"pattern": RFC3339, "description": "RFC 3339 with offset"}),
]
#: A compact JWS (queue tickets, admission tokens) as headers and queries carry it.
JWS = whole(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

_encoder = msgspec.json.Encoder()


class Base(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Strict by default: unknown fields are refused, every field named."""


class Reply(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of response bodies (tolerant: clients should ignore fields they do not know)."""


@cache
def _decoder(typ: type[Any]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(typ)


def decode(body: bytes, typ: type[T]) -> T:
    """Bytes → typed value, or a problem naming the field (400 malformed, 422 invalid)."""
    try:
        return _decoder(typ).decode(body)  # type: ignore[no-any-return, arg-type]
    except msgspec.ValidationError as exc:
        raise errors.from_validation_error(exc) from None
    except msgspec.DecodeError as exc:
        raise errors.malformed(f"body is not valid JSON: {exc}") from None


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def rfc3339(ts: float) -> str:
    """A UNIX time as RFC 3339 UTC with a ``Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
