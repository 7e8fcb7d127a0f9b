"""Our own signing keys (Ed25519, compact JWS ``EdDSA``) and their publication as a JWKS.

Each use has its keyring, a directory of ``<created>.pem`` files: admission tokens
(``rooms.signing_key_dir``, served at ``/.well-known/jwks.json``), draw transcripts
(``draws.signing_key_dir``, published with each transcript) and the coming e-tickets. Callers
depend on the two protocols, not on :class:`Keyring`: a :class:`Signer` signs claims, a
:class:`KeySource` says which public keys verify them.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from guichet import auth_jws
from guichet.auth import Refused, public_jwk
from guichet.files import write_once

#: A public JWK (RFC 7517) as published: ``kty``, ``crv``, ``x``, ``kid``, ``alg``, ``use``.
JWK = dict[str, str]
#: How long a retired key stays published after the last token it signed has expired, s.
PUBLISH_MARGIN_S = 60


class Signer(Protocol):
    """Signs claims as a compact JWS with the key named ``kid`` (public half: ``jwk``)."""

    @property
    def kid(self) -> str: ...

    @property
    def jwk(self) -> JWK: ...

    def sign(self, claims: Mapping[str, object]) -> str: ...


class KeySource(Protocol):
    """The public keys that verify what a :class:`Signer` signed; :func:`verify` reads the
    raw 32 bytes (kept per kid, not derived per call)."""

    def published(self, now: float | None = None) -> list[JWK]: ...

    def public_key(self, kid: str) -> Ed25519PublicKey | None: ...

    def raw_public_key(self, kid: str) -> bytes | None: ...


@dataclass(frozen=True)
class SigningKey:
    created: int  # UNIX seconds, from the file name
    key: Ed25519PrivateKey
    jwk: JWK
    public: bytes  # the raw public key (32 bytes)

    @property
    def kid(self) -> str:
        return self.jwk["kid"]


def _jwk(key: Ed25519PrivateKey) -> JWK:
    return {name: str(value) for name, value in public_jwk(key).items()}


class Keyring:
    """Ed25519 keys kept as ``<created>.pem`` files in one directory: a :class:`Signer` and a
    :class:`KeySource`.

    The newest key signs. A retired key stays published until every token it signed has
    expired (``max_ttl_s`` after its successor appeared), so a verifier can check across a
    rotation. ``guichet room rotate-key`` adds a key; workers see it at the next
    :meth:`refresh` (every few seconds).
    """

    def __init__(self, directory: str | os.PathLike[str], max_ttl_s: int = 3600) -> None:
        self.directory = Path(directory)
        self.max_ttl_s = max_ttl_s
        self._keys: list[SigningKey] = []
        self._raw: dict[str, bytes] = {}
        self._seen: tuple[str, ...] = ()
        self.refresh()
        if not self._keys:
            self.rotate(now=0)
            self.refresh()

    def rotate(self, now: float | None = None) -> Path:
        """Add a new key (it signs from the next refresh on)."""
        created = int(time.time() if now is None else now)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = self.directory / f"{created:010d}.pem"
        write_once(path, pem)
        return path

    def refresh(self) -> None:
        """Load the key files again if the directory's listing changed."""
        with contextlib.suppress(FileNotFoundError):
            names = tuple(sorted(p.name for p in self.directory.glob("*.pem")))
            if names == self._seen:
                return
            keys = []
            for name in names:
                key = serialization.load_pem_private_key(
                    (self.directory / name).read_bytes(), password=None
                )
                if isinstance(key, Ed25519PrivateKey):
                    public = key.public_key().public_bytes_raw()
                    keys.append(SigningKey(int(name.split(".")[0]), key, _jwk(key), public))
            raw: dict[str, bytes] = {}
            for k in keys:
                raw.setdefault(k.kid, k.public)
            self._keys, self._raw, self._seen = keys, raw, names

    @property
    def active(self) -> SigningKey:
        return self._keys[-1]

    @property
    def kid(self) -> str:
        return self.active.kid

    @property
    def jwk(self) -> JWK:
        return self.active.jwk

    def sign(self, claims: Mapping[str, object]) -> str:
        active = self.active
        return jwt.encode(dict(claims), active.key, algorithm="EdDSA", headers={"kid": active.kid})

    def published(self, now: float | None = None) -> list[JWK]:
        """Public JWKs that may still verify a live token: the active key and recent ones."""
        now = time.time() if now is None else now
        out = [self._keys[-1].jwk]
        for older, successor in zip(self._keys[:-1], self._keys[1:], strict=True):
            if successor.created + self.max_ttl_s + PUBLISH_MARGIN_S > now:
                out.append(older.jwk)
        return out

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        for k in self._keys:
            if k.kid == kid:
                return k.key.public_key()
        return None

    def raw_public_key(self, kid: str) -> bytes | None:
        return self._raw.get(kid)


def verify(
    keys: KeySource,
    token: str,
    *,
    what: str,
    audience: str,
    issuer: str,
    require: Sequence[str],
) -> dict[str, Any]:
    """The claims of a ``what`` (e.g. "admission token") signed by one of ``keys``, or
    :class:`Refused` (reason: forged, expired, malformed)."""
    return _verify(keys, token, what, audience, issuer, require, expired_ok=False)


def verify_late(
    keys: KeySource,
    token: str,
    *,
    what: str,
    audience: str,
    issuer: str,
    require: Sequence[str],
) -> dict[str, Any]:
    """As :func:`verify`, but a token past its ``exp`` is accepted (all else is checked): a
    protected site revoking an admission late (room/revocation.py)."""
    return _verify(keys, token, what, audience, issuer, require, expired_ok=True)


def _verify(
    keys: KeySource,
    token: str,
    what: str,
    audience: str,
    issuer: str,
    require: Sequence[str],
    *,
    expired_ok: bool,
) -> dict[str, Any]:
    """:func:`verify`'s work; ``expired_ok`` for :func:`verify_late`.

    Verified directly (auth_jws.py's strict parse, libsodium's Ed25519), with the reasons and
    messages PyJWT's ``decode`` gave (tests/unit/test_signing_verify.py holds the two side by
    side): the key, then ``alg``, the signature, then the claims in PyJWT's order."""
    try:
        jws = auth_jws.parse(token)
    except Refused:
        raise Refused("malformed", f"{what} is not a JWT") from None
    kid = jws.header.kid
    key = keys.raw_public_key(kid if kid is not msgspec.UNSET else "")
    if key is None:
        raise Refused("forged", f"{what} key is unknown")
    if jws.header.alg != "EdDSA" or not auth_jws.ed25519_verifies(key, jws):
        raise Refused("forged", f"{what} does not verify")
    try:
        claims = auth_jws.claims_of(jws)
    except Refused:
        raise Refused("forged", f"{what} does not verify") from None
    _check_claims(
        claims, what=what, audience=audience, issuer=issuer, require=require,
        expired_ok=expired_ok,
    )  # fmt: skip
    return claims


def _date(claims: dict[str, Any], name: str) -> int | None:
    """PyJWT's reading of a date claim: ``int()`` of it, None when that fails."""
    try:
        return int(claims[name])
    except (ValueError, TypeError, OverflowError):
        return None


def _check_claims(
    claims: dict[str, Any],
    *,
    what: str,
    audience: str,
    issuer: str,
    require: Sequence[str],
    expired_ok: bool = False,
) -> None:
    """PyJWT's ``_validate_claims`` (leeway 0), in its order: an expired token is ``expired``,
    any other failure ``forged``, as the PyJWT path mapped them."""
    forged = Refused("forged", f"{what} does not verify")
    if any(claims.get(name) is None for name in require):
        raise forged
    now = time.time()
    for name in ("iat", "nbf"):
        if name in claims and ((at := _date(claims, name)) is None or at > now):
            raise forged
    if "exp" in claims:
        exp = _date(claims, "exp")
        if exp is None:
            raise forged
        if exp <= now and not expired_ok:
            raise Refused("expired", f"{what} has expired")
    if not isinstance(claims.get("iss"), str) or claims["iss"] != issuer:
        raise forged
    aud = claims.get("aud")
    if not aud:
        raise forged
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise forged
    if audience not in audiences:
        raise forged
    for name in ("sub", "jti"):
        if name in claims and not isinstance(claims[name], str):
            raise forged
