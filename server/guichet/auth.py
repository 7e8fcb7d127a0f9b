"""Bearer tokens: verify account and admin JWTs (signature, issuer, audience, expiry, scope).

Keys come from config: PEM public keys, a JWKS file, a JWKS URL (jwks.py), and — for the
demo, tests and load tests — a local development issuer whose Ed25519 key ``guichet token``
signs with; account tokens may also be HS256 with a secret shared with the front-end
(``account_hs256_secret``). EdDSA and HS256 tokens are verified directly (auth_jws.py:
libsodium, the standard library's HMAC); other algorithms, minting and JWKS parsing use PyJWT.
Guichet stores the account id (``sub``) only, never names or e-mails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from guichet import auth_jws, errors, files, jwks, metrics
from guichet.auth_jws import MAX_TOKEN_LEN as MAX_TOKEN_LEN
from guichet.auth_jws import Refused as Refused
from guichet.auth_jws import compact_jws as compact_jws
from guichet.cache import Bounded
from guichet.config import SecurityConfig

MAX_SUBJECT_LEN = 128
#: The shortest shared HS256 secret accepted (RFC 7518 §3.2: at least the hash's size).
MIN_HS256_SECRET_BYTES = 32
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
    """The development issuer's signing key; created (mode 0600) on first use. Processes
    starting together (workers, several servers in one folder) all end up with the key of the
    one that created the file first."""
    file = Path(path)
    if not file.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        files.write_once(file, pem)  # atomic; another process's file, if first, is kept
    key = serialization.load_pem_private_key(file.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{file} is not an Ed25519 private key")
    return key


def public_jwk(key: Ed25519PrivateKey) -> dict[str, Any]:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
    return {**jwk, "kid": thumbprint(jwk), "alg": "EdDSA", "use": "sig"}


def claims_for(
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
) -> dict[str, Any]:
    """The claims of a token the development issuer (or the HS256 front-end) mints."""
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
    return claims


def mint(key: Ed25519PrivateKey, **kw: Any) -> str:
    """Sign a token as the development issuer (``guichet token``, tests, load tests);
    ``kw`` are :func:`claims_for`'s."""
    claims = claims_for(**kw)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": public_jwk(key)["kid"]})


def mint_hs256(secret: bytes, **kw: Any) -> str:
    """An HS256 account token signed with the shared secret (``guichet token --hs256``, tests)."""
    return jwt.encode(claims_for(**kw), secret, algorithm="HS256")


def hs256_secret(cfg: SecurityConfig) -> bytes | None:
    """The shared HS256 account-token secret (config, else its file), or None when unset.
    Shorter than 32 bytes: refused (start-up fails)."""
    if cfg.account_hs256_secret is not None:
        secret = cfg.account_hs256_secret.encode()
    elif cfg.account_hs256_secret_file is not None:
        secret = Path(cfg.account_hs256_secret_file).read_bytes().rstrip(b"\r\n")
    else:
        return None
    if len(secret) < MIN_HS256_SECRET_BYTES:
        raise ValueError(
            f"security.account_hs256_secret must be at least {MIN_HS256_SECRET_BYTES} bytes"
        )
    return secret


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

    def __init__(
        self, cfg: SecurityConfig, keys: dict[str, Any], hs256_secret: bytes | None = None
    ) -> None:
        if not keys and hs256_secret is None and cfg.jwks_url is None:
            raise ValueError(
                "no token verification keys: enable security.dev_issuer or set "
                "security.public_keys / security.jwks_file / security.jwks_url"
            )
        if hs256_secret is not None and len(hs256_secret) < MIN_HS256_SECRET_BYTES:
            raise ValueError(
                f"security.account_hs256_secret must be at least {MIN_HS256_SECRET_BYTES} bytes"
            )
        self.cfg = cfg
        self._static = keys
        self._hs256 = hs256_secret
        self._use_keys(keys)
        # A token verified once is remembered until it expires: signatures cost ~40-60 µs.
        self._accounts: Bounded[str, Account] = Bounded(cfg.verified_cache_size)
        #: The provider's keys from ``security.jwks_url`` (jwks.py), merged with the above.
        self.remote = jwks.Source(cfg, self._use_remote) if cfg.jwks_url is not None else None
        # The kid of each token header seen (headers repeat: one per provider key).
        self._kids: Bounded[str, str] = Bounded(1024)

    def _use_keys(self, keys: dict[str, Any]) -> None:
        self._keys = keys
        # EdDSA tokens are checked by libsodium when every key is Ed25519 (else PyJWT, whose
        # handling of a key of another type stays as it was).
        self._ed25519: dict[str, bytes] | None = None
        ed25519 = all(isinstance(k, Ed25519PublicKey) for k in keys.values())
        if "EdDSA" in self.cfg.algorithms and ed25519:
            self._ed25519 = {kid: k.public_bytes_raw() for kid, k in keys.items()}

    def _use_remote(self, remote: dict[str, Any]) -> None:
        """A fresh key set from the provider: the configured keys win a ``kid`` clash; a key
        gone or changed empties the verified-token cache (its tokens must stop verifying)."""
        merged = {**remote, **self._static}
        if any(merged.get(kid) != key for kid, key in self._keys.items()):
            self._accounts = Bounded(self.cfg.verified_cache_size)
        self._use_keys(merged)

    def not_ready(self) -> str | None:
        """Why tokens cannot be verified yet (readiness), or None."""
        if self.remote is not None and not self.remote.fetched:
            return "no identity-provider keys fetched from security.jwks_url yet"
        return None

    async def ensure_kid(self, authorization: str | None) -> None:
        """Before a token is verified: when it names a ``kid`` no key has and claims our
        issuer, refresh the provider's keys once (coalesced, rate-limited). A dict lookup when
        the kid is known; nothing without ``security.jwks_url``; never raises."""
        if self.remote is None or not authorization:
            return
        token = authorization.partition(" ")[2].strip()
        head = token.partition(".")[0]
        kid = self._kids.get(head)
        if kid is None:
            kid = self._kid_of(head) or ""  # "": a header without a usable kid
            self._kids.put(head, kid)
        if not kid or kid in self._keys:
            return
        if not (self.remote.busy or self.remote.may_fetch()):
            return
        if self._claims_issuer(token):
            await self.remote.refresh()

    def _kid_of(self, head: str) -> str | None:
        """The header's kid when a provider's key could verify the token: its ``alg`` is one
        of the configured algorithms (never HS256, whose secret no JWKS carries)."""
        try:
            header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        except (ValueError, RecursionError):
            return None
        if not isinstance(header, dict) or header.get("alg") not in self.cfg.algorithms:
            return None
        kid = header.get("kid")
        return kid if isinstance(kid, str) and len(kid) <= 256 else None

    def _claims_issuer(self, token: str) -> bool:
        """Whether the unverified payload names the configured issuer (admission tokens,
        signed by Guichet's own keys, never make the provider's keys refresh)."""
        payload = token.split(".")[1] if token.count(".") == 2 else ""
        try:
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, RecursionError):
            return False
        return isinstance(claims, dict) and claims.get("iss") == self.cfg.issuer

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
        return cls(cfg, keys, hs256_secret(cfg))

    def _candidates(self, kid: str | None) -> list[str]:
        """The ids of the keys a token is tried against: its ``kid``'s key when known;
        otherwise (PEM keys have no kid) every configured key. With ``security.jwks_url`` an
        unknown kid is refused outright (the keys were refreshed for it: ensure_kid), and a
        token without kid is not tried against the provider's keys, so no token costs more
        than the configured keys' verifications."""
        if kid in self._keys:
            return [kid]
        if self.remote is None:
            return list(self._keys)
        if kid is not None:
            raise Refused("bad_signature", "token key id is unknown")
        return [k for k in self._static if k in self._keys]

    def _hs256_audience(self, audience: str) -> bool:
        """HS256 is for account tokens only: never where an admin token is checked, even
        when the two audiences are configured the same."""
        return audience == self.cfg.audience and audience != self.cfg.admin_audience

    def _decode(self, token: str, audience: str) -> dict[str, Any]:
        """The verified claims of ``token`` for ``audience``: EdDSA and HS256 directly
        (auth_jws.py), any other algorithm through PyJWT; the same refusals either way."""
        jws = auth_jws.parse(token)
        alg = jws.header.alg
        if alg == "HS256" and self._hs256 is not None and self._hs256_audience(audience):
            mac = hmac.new(self._hs256, jws.signing_input, hashlib.sha256).digest()
            if not hmac.compare_digest(mac, jws.signature):
                raise Refused("bad_signature", "token signature does not verify")
        elif alg == "EdDSA" and self._ed25519 is not None:
            ed25519 = self._ed25519
            kid = jws.header.kid if isinstance(jws.header.kid, str) else None  # UNSET: none
            keys = [ed25519[k] for k in self._candidates(kid)]
            if not any(auth_jws.ed25519_verifies(key, jws) for key in keys):
                raise Refused("bad_signature", "token signature does not verify")
        elif not isinstance(alg, str) or alg not in self.cfg.algorithms:
            raise Refused("bad_algorithm", "token algorithm is not allowed")
        else:
            return self._decode_pyjwt(token, audience)
        claims = auth_jws.claims_of(jws)
        auth_jws.check_claims(claims, audience=audience, issuer=self.cfg.issuer,
                              leeway=self.cfg.leeway_s, now=time.time())  # fmt: skip
        return claims

    def _decode_pyjwt(self, token: str, audience: str) -> dict[str, Any]:
        """PyJWT's verification: algorithms other than EdDSA, and the reference the direct
        path is tested against (tests/unit/test_auth_jws.py)."""
        compact_jws(token)
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, *DECODE_FAILURES):  # not JSON, a non-string kid, a crit, …
            raise Refused("malformed", "token is not a JWT") from None
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Refused("malformed", "token header kid must be a string")
        hs256 = header.get("alg") == "HS256" and self._hs256 is not None
        if hs256 and audience == self.cfg.audience:
            candidates: list[Any] = [self._hs256]
            algorithms = ["HS256"]
        else:
            candidates = [self._keys[k] for k in self._candidates(kid)]
            algorithms = list(self.cfg.algorithms)
        last: Exception | None = None
        for key in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=algorithms,
                    audience=audience,
                    issuer=self.cfg.issuer,
                    leeway=self.cfg.leeway_s,
                    options={"require": list(auth_jws.REQUIRED)},
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

    def admin(self, token: str, scope: str | tuple[str, ...]) -> Admin:
        """The admin of ``token`` holding ``scope`` (or one of several)."""
        claims = self._checked_claims(token, self.cfg.admin_audience)
        raw = claims.get("scope", "")
        scopes = frozenset(raw.split()) if isinstance(raw, str) else frozenset()
        wanted = (scope,) if isinstance(scope, str) else scope
        if scopes.isdisjoint(wanted):
            names = " or ".join(repr(s) for s in wanted)
            raise Refused("insufficient_scope", f"token lacks the scope {names}")
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


def authenticate_admin(
    verifier: Verifier, authorization: str | None, scope: str | tuple[str, ...]
) -> Admin:
    """Admin identity with ``scope``, or 401 (bad token) / 403 (valid token, scope missing)."""
    try:
        return verifier.admin(bearer(authorization), scope)
    except Refused as exc:
        metrics.AUTH_FAILURES.labels(exc.reason).inc()
        if exc.reason == "insufficient_scope":
            raise errors.forbidden(exc.detail) from None
        raise errors.unauthorized(exc.detail) from None
