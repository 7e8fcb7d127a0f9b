"""A compact JWS parsed strictly, and the registered claims checked, without PyJWT.

The hot path of a first-sight token (docs/architecture.md, "Token verification"): the
framing (three base64url segments without padding, canonical; a JSON header and payload) is
parsed here; the signature is checked by libsodium (Ed25519, PyNaCl) or the standard
library's HMAC-SHA-256 — never by code of ours. The claims are checked with PyJWT's rules
(same order, same leeway, ``int()`` of each date), so a token gets the refusal reason and
message PyJWT's path gave it (tests/unit/test_auth_jws.py holds the two side by side).

Stricter than PyJWT, on purpose: any ``crit`` header is refused (we implement no extension);
JSON must be RFC 8259 UTF-8 (no ``NaN``/``Infinity``, no UTF-16, no lone surrogates, no
number out of a double's range).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import msgspec
from nacl.bindings import crypto_sign_BYTES, crypto_sign_open
from nacl.exceptions import BadSignatureError

MAX_TOKEN_LEN = 8192  # aiohttp refuses longer header lines anyway
#: A compact JWS: three base64url segments. Anything else (non-ASCII, lone surrogates from
#: non-UTF-8 header bytes, spaces, control characters) is refused before any decoder sees it.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

NOT_A_JWT = "token is not a JWT"
UNDECODABLE = "token could not be decoded"
#: The claims every token carries (PyJWT's ``require`` option, as the PyJWT path passes it).
REQUIRED = ("exp", "iat", "sub", "iss", "aud")


class Refused(Exception):
    """A token was refused; ``reason`` is a bounded metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def compact_jws(token: str, what: str = "token") -> str:
    """``token`` if it has the shape of a compact JWS, else a ``malformed`` refusal."""
    if len(token) > MAX_TOKEN_LEN or not _COMPACT_JWS.fullmatch(token):
        raise Refused("malformed", f"{what} is not a JWT")
    return token


class Header(msgspec.Struct, frozen=True):
    """The JOSE header members we read (others are ignored, as PyJWT ignores them). Typed
    ``Any``: a member of the wrong type gets PyJWT's reason (an ``alg`` of 7 is
    ``bad_algorithm``, a ``kid`` of 7 ``malformed``), decided below, not by the decoder."""

    alg: Any = None
    kid: Any = msgspec.UNSET
    crit: Any = msgspec.UNSET
    b64: Any = msgspec.UNSET


_HEADER = msgspec.json.Decoder(Header)
_CLAIMS = msgspec.json.Decoder()
_DECODE_FAILURES = (msgspec.DecodeError, ValueError, RecursionError)


@dataclass(frozen=True, slots=True)
class Jws:
    header: Header
    signing_input: bytes
    payload: bytes
    signature: bytes


def _segment(text: str) -> bytes:
    """A base64url segment without padding; non-canonical spellings (set unused bits) are
    refused, as PyJWT refuses them."""
    if len(text) % 4 == 1:
        raise Refused("malformed", NOT_A_JWT)
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != text.encode():
        raise Refused("malformed", NOT_A_JWT)
    return raw


def parse(token: str) -> Jws:
    """The header, signing input, payload and signature of a compact JWS (nothing verified)."""
    compact_jws(token)
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        # str first: msgspec does not check the UTF-8 of bytes inside a string
        header = _HEADER.decode(_segment(header_b64).decode())
    except _DECODE_FAILURES:  # not UTF-8, not JSON, not an object
        raise Refused("malformed", NOT_A_JWT) from None
    if header.b64 is False:  # an unencoded payload (RFC 7797): never ours
        raise Refused("malformed", NOT_A_JWT)
    if header.crit is not msgspec.UNSET:  # an extension the signer says we must understand
        raise Refused("malformed", NOT_A_JWT)
    if header.kid is not msgspec.UNSET and not isinstance(header.kid, str):
        raise Refused("malformed", NOT_A_JWT)
    payload = _segment(payload_b64)
    signature = _segment(signature_b64)
    signing_input = token[: len(header_b64) + 1 + len(payload_b64)].encode()
    return Jws(header, signing_input, payload, signature)


def ed25519_verifies(public_key: bytes, jws: Jws) -> bool:
    """libsodium's Ed25519 check of ``jws``'s signature (strict: canonical encodings only)."""
    if len(jws.signature) != crypto_sign_BYTES:
        return False
    try:
        crypto_sign_open(jws.signature + jws.signing_input, public_key)
    except BadSignatureError:
        return False
    return True


def claims_of(jws: Jws) -> dict[str, Any]:
    """The payload as a JSON object (after the signature verified: PyJWT's order)."""
    try:
        claims = _CLAIMS.decode(jws.payload.decode())  # UTF-8 checked, as for the header
    except _DECODE_FAILURES:
        raise Refused("malformed", UNDECODABLE) from None
    if not isinstance(claims, dict):
        raise Refused("malformed", UNDECODABLE)
    return claims


def _date(value: Any) -> int:
    try:
        return int(value)  # PyJWT's conversion, as is (a float truncated, "12" read)
    except (ValueError, TypeError, OverflowError):
        raise Refused("malformed", UNDECODABLE) from None


def check_claims(
    claims: dict[str, Any], *, audience: str, issuer: str, leeway: float, now: float
) -> None:
    """PyJWT's ``_validate_claims`` with ``require=REQUIRED``, in its order and with the
    reasons and messages the PyJWT path maps its exceptions to."""
    for name in REQUIRED:
        if claims.get(name) is None:
            raise Refused("malformed", "token lacks a required claim")
    if "iat" in claims and _date(claims["iat"]) > now + leeway:
        raise Refused("not_yet_valid", "token is not valid yet")
    if "nbf" in claims and _date(claims["nbf"]) > now + leeway:
        raise Refused("not_yet_valid", "token is not valid yet")
    if "exp" in claims and _date(claims["exp"]) <= now - leeway:
        raise Refused("expired", "token has expired")
    if claims["iss"] != issuer or not isinstance(claims["iss"], str):
        raise Refused("wrong_issuer", "token is from an untrusted issuer")
    aud = claims["aud"]
    if not aud:
        raise Refused("malformed", "token lacks a required claim")
    audiences = [aud] if isinstance(aud, str) else aud
    if (
        not isinstance(audiences, list)
        or not all(isinstance(a, str) for a in audiences)
        or audience not in audiences
    ):
        raise Refused("wrong_audience", "token is not for this audience")
    if not isinstance(claims["sub"], str):
        raise Refused("malformed", UNDECODABLE)
    if "jti" in claims and not isinstance(claims["jti"], str):
        raise Refused("malformed", UNDECODABLE)
