"""The draw seed, sealed between ``guichet draw commit`` and ``guichet draw run``.

The seed is made by the OS CSPRNG and stored in Redis only encrypted (AES-256-GCM, the draw id
and commitment as associated data) under the seal key from config (``draws.seal_key``) or a
local file made on first use (``draws.seal_key_file``, mode 0600). A Redis dump or replica
alone does not reveal it; whoever runs the draw needs the seal key.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from guichet.config import DrawsConfig
from guichet.draw.model import SEED_BYTES, commitment
from guichet.files import write_once

_NONCE = 12


class SealError(Exception):
    """The sealed seed cannot be opened (another seal key, or altered)."""


def seal_key(cfg: DrawsConfig) -> bytes:
    """The 32-byte seal key: from config (base64 or hex), else a local file made on first use."""
    if cfg.seal_key is not None:
        return _decode_key(cfg.seal_key)
    path = Path(cfg.seal_key_file)
    if not path.exists():
        write_once(path, secrets.token_hex(32).encode())
    return _decode_key(path.read_text().strip())


def _decode_key(text: str) -> bytes:
    try:
        key = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError("the draw seal key must be 32 bytes, in hex or base64") from None
    if len(key) != 32:
        raise ValueError("the draw seal key must be 32 bytes, in hex or base64")
    return key


def new_seed() -> tuple[bytes, str]:
    """A fresh secret seed and its public commitment."""
    seed = secrets.token_bytes(SEED_BYTES)
    return seed, commitment(seed)


def _aad(draw: str, published: str) -> bytes:
    return f"guichet-draw-seed\0{draw}\0{published}".encode()


def seal(key: bytes, draw: str, seed: bytes, published: str) -> bytes:
    nonce = secrets.token_bytes(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, seed, _aad(draw, published))


def unseal(key: bytes, draw: str, sealed: bytes, published: str) -> bytes:
    try:
        seed = AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], _aad(draw, published))
    except (InvalidTag, ValueError):
        raise SealError("the sealed seed does not open with this seal key") from None
    if commitment(seed) != published:
        raise SealError("the sealed seed does not match the published commitment")
    return seed
