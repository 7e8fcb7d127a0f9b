"""Bearer tokens: verify account and admin JWTs (signature, issuer, audience, expiry, scope).

Verification uses PyJWT with keys from config: PEM public keys, a JWKS file, and — for the
demo, tests and load tests — a local development issuer whose Ed25519 key ``guichet token``
signs with. Guichet stores the account id (``sub``) only, never names or e-mails.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from guichet import errors, metrics
from guichet.cache import Bounded
from guichet.config import SecurityConfig

MAX_SUBJECT_LEN = 128
MAX_TOKEN_LEN = 8192  # aiohttp refuses longer header lines anyway
#: A compact JWS: three base64url segments. Anything else (non-ASCII, lone surrogates from
#: non-UTF-8 header bytes, spaces, control characters) is refused before any decoder sees it.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: What a JWT library may raise on odd but well-formed JSON (``1e400``, huge integers, …).
DECODE_FAILURES = (ValueError, TypeError, OverflowError, RecursionError)


@dataclass(frozen=True)
class Account:
    """The caller of a public endpoint, as the identity provider vouches for it."""

    id: str
    expires_at: float
    #: The groups the identity provider puts the account in (``security.groups_claim``);
    #: a restricted draw stratum of the same name admits it.
    groups: frozenset[str] = frozenset()


MAX_GROUPS = 64


def groups_of(value: object) -> frozenset[str]:
    """The groups claim as a set: a list of names (or one space-separated string); entries
    that are not short printable strings are ignored, not fatal (they only grant nothing)."""
    names = value.split() if isinstance(value, str) else value
    if not isinstance(names, list):
        return frozenset()
    return frozenset(n for n in names[:MAX_GROUPS] if printable(n, 64))


@dataclass(frozen=True)
class Admin:
    """An operator and the scopes its token grants."""

    subject: str
    scopes: frozenset[str]
    expires_at: float
    #: The State programmes this operator acts for (``security.programmes_claim``).
    programmes: frozenset[str] = frozenset()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(public_jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint of an OKP/EC/RSA public key: its ``kid``."""
    required = {
        "OKP": ("crv", "kty", "x"),
        "EC": ("crv", "kty", "x", "y"),
        "RSA": ("e", "kty", "n"),
    }
    members = {k: public_jwk[k] for k in required[public_jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64(hashlib.sha256(canonical).digest())


def load_or_create_dev_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The development issuer's signing key; created (mode 0600) on first use."""
    file = Path(path)
    if file.exists():
        key = serialization.load_pem_private_key(file.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{file} is not an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    file.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return key


def public_jwk(key: Ed25519PrivateKey) -> dict[str, Any]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
    return {**jwk, "kid": thumbprint(jwk), "alg": "EdDSA", "use": "sig"}


def mint(
    key: Ed25519PrivateKey,
    *,
    issuer: str,
    audience: str,
    subject: str,
    ttl_s: int,
    scopes: list[str] | None = None,
    now: float | None = None,
    groups: list[str] | None = None,
    groups_claim: str = "groups",
    programmes: list[str] | None = None,
    programmes_claim: str = "programmes",
) -> str:
    """Sign a token as the development issuer (``guichet token``, tests, load tests)."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
        "jti": secrets.token_urlsafe(12),
    }
    if scopes:
        claims["scope"] = " ".join(scopes)
    if groups:
        claims[groups_claim] = groups
    if programmes:
        claims[programmes_claim] = programmes
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": public_jwk(key)["kid"]})


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


def printable(value: object, max_len: int = MAX_SUBJECT_LEN) -> bool:
    """A claim usable as an id: a string of 1..max_len printable characters."""
    return isinstance(value, str) and 0 < len(value) <= max_len and value.isprintable()


def timestamp(value: object) -> bool:
    """A claim usable as a UNIX time: a finite number (not a boolean)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) < 2**53
    )


_PYJWT_REASONS: list[tuple[type[Exception], str, str]] = [
    (jwt.ExpiredSignatureError, "expired", "token has expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid", "token is not valid yet"),
    (jwt.InvalidAudienceError, "wrong_audience", "token is not for this audience"),
    (jwt.InvalidIssuerError, "wrong_issuer", "token is from an untrusted issuer"),
    (jwt.InvalidSignatureError, "bad_signature", "token signature does not verify"),
    (jwt.MissingRequiredClaimError, "malformed", "token lacks a required claim"),
    (jwt.InvalidAlgorithmError, "bad_algorithm", "token algorithm is not allowed"),
]


class Verifier:
    """Checks bearer tokens against the configured issuer, audiences and keys."""

    def __init__(self, cfg: SecurityConfig, keys: dict[str, Any]) -> None:
        if not keys:
            raise ValueError(
                "no token verification keys: enable security.dev_issuer or set "
                "security.public_keys / security.jwks_file"
            )
        self.cfg = cfg
        self._keys = keys
        # A token verified once is remembered until it expires: signatures cost ~100 µs.
        self._accounts: Bounded[str, Account] = Bounded(cfg.verified_cache_size)

    @classmethod
    def from_config(cls, cfg: SecurityConfig) -> Verifier:
        keys: dict[str, Any] = {}
        if cfg.dev_issuer:
            dev = load_or_create_dev_key(cfg.dev_issuer_key_file)
            keys[public_jwk(dev)["kid"]] = dev.public_key()
        for pem_file in cfg.public_keys:
            key = serialization.load_pem_public_key(Path(pem_file).read_bytes())
            keys[f"pem:{pem_file}"] = key
        if cfg.jwks_file:
            jwks = jwt.PyJWKSet.from_json(Path(cfg.jwks_file).read_text())
            for jwk in jwks.keys:
                keys[jwk.key_id or f"jwks:{len(keys)}"] = jwk.key
        return cls(cfg, keys)

    def _decode(self, token: str, audience: str) -> dict[str, Any]:
        compact_jws(token)
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, *DECODE_FAILURES):  # not JSON, a non-string kid, a crit, …
            raise Refused("malformed", "token is not a JWT") from None
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Refused("malformed", "token header kid must be a string")
        # A known kid picks its key; otherwise (PEM keys have no kid) every key is tried.
        candidates = [self._keys[kid]] if kid in self._keys else list(self._keys.values())
        last: Exception | None = None
        for key in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=list(self.cfg.algorithms),
                    audience=audience,
                    issuer=self.cfg.issuer,
                    leeway=self.cfg.leeway_s,
                    options={"require": ["exp", "iat", "sub", "iss", "aud"]},
                )
                return claims
            except jwt.InvalidSignatureError as exc:
                last = exc  # another configured key may verify it
            except jwt.PyJWTError as exc:
                raise self._refusal(exc) from None
            except DECODE_FAILURES:
                raise Refused("malformed", "token could not be decoded") from None
        raise self._refusal(last or jwt.InvalidSignatureError())

    @staticmethod
    def _refusal(exc: Exception) -> Refused:
        for kind, reason, detail in _PYJWT_REASONS:
            if isinstance(exc, kind):
                return Refused(reason, detail)
        return Refused("malformed", "token could not be decoded")

    def _checked_claims(self, token: str, audience: str) -> dict[str, Any]:
        claims = self._decode(token, audience)
        if not printable(claims["sub"]):
            raise Refused("malformed", f"token subject must be 1-{MAX_SUBJECT_LEN} printable chars")
        if not (timestamp(claims["exp"]) and timestamp(claims["iat"])):
            raise Refused("malformed", "token exp and iat must be numeric dates")
        if float(claims["exp"]) - float(claims["iat"]) > self.cfg.max_token_ttl_s:
            raise Refused("ttl_too_long", "token lifetime exceeds security.max_token_ttl_s")
        return claims

    def account(self, token: str) -> Account:
        known = self._accounts.get(token)
        if known is not None:
            if time.time() < known.expires_at + self.cfg.leeway_s:
                return known
            raise Refused("expired", "token has expired")
        claims = self._checked_claims(token, self.cfg.audience)
        account = Account(
            id=claims["sub"],
            expires_at=float(claims["exp"]),
            groups=groups_of(claims.get(self.cfg.groups_claim)),
        )
        self._accounts.put(token, account)
        return account

    def admin(self, token: str, scope: str) -> Admin:
        claims = self._checked_claims(token, self.cfg.admin_audience)
        raw = claims.get("scope", "")
        scopes = frozenset(raw.split()) if isinstance(raw, str) else frozenset()
        if scope not in scopes:
            raise Refused("insufficient_scope", f"token lacks the scope {scope!r}")
        programmes = groups_of(claims.get(self.cfg.programmes_claim))
        return Admin(subject=claims["sub"], scopes=scopes, expires_at=float(claims["exp"]),
                     programmes=programmes)  # fmt: skip


def bearer(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer …`` header, or a refusal."""
    if not authorization:
        raise Refused("missing", "send Authorization: Bearer <token>")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refused("malformed", "the Authorization header must be 'Bearer <token>'")
    return token.strip()


def authenticate_account(verifier: Verifier, authorization: str | None) -> Account:
    """Account identity for a request, or a 401 problem (counted by reason)."""
    try:
        return verifier.account(bearer(authorization))
    except Refused as exc:
        metrics.AUTH_FAILURES.labels(exc.reason).inc()
        raise errors.unauthorized(exc.detail) from None


def authenticate_admin(verifier: Verifier, authorization: str | None, scope: str) -> Admin:
    """Admin identity with ``scope``, or 401 (bad token) / 403 (valid token, scope missing)."""
    try:
        return verifier.admin(bearer(authorization), scope)
    except Refused as exc:
        metrics.AUTH_FAILURES.labels(exc.reason).inc()
        if exc.reason == "insufficient_scope":
            raise errors.forbidden(exc.detail) from None
        raise errors.unauthorized(exc.detail) from None
