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
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from guichet.auth import DECODE_FAILURES, Refused, compact_jws, public_jwk
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
    """The public keys that verify what a :class:`Signer` signed."""

    def published(self, now: float | None = None) -> list[JWK]: ...

    def public_key(self, kid: str) -> Ed25519PublicKey | None: ...


@dataclass(frozen=True)
class SigningKey:
    created: int  # UNIX seconds, from the file name
    key: Ed25519PrivateKey
    jwk: JWK

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
                    keys.append(SigningKey(int(name.split(".")[0]), key, _jwk(key)))
            self._keys, self._seen = keys, names

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
    compact_jws(token, what)
    try:
        kid = jwt.get_unverified_header(token).get("kid", "")
    except (jwt.PyJWTError, *DECODE_FAILURES):
        raise Refused("malformed", f"{what} is not a JWT") from None
    key = keys.public_key(kid) if isinstance(kid, str) else None
    if key is None:
        raise Refused("forged", f"{what} key is unknown")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["EdDSA"],
            audience=audience,
            issuer=issuer,
            options={"require": list(require)},
        )
    except jwt.ExpiredSignatureError:
        raise Refused("expired", f"{what} has expired") from None
    except jwt.PyJWTError:
        raise Refused("forged", f"{what} does not verify") from None
    except DECODE_FAILURES:
        raise Refused("malformed", f"{what} could not be decoded") from None
    return claims
