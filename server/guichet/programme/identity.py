"""Beneficiaries' identity, minimised (CNIL recommendation 1, seed 002 §4): what is stored is a
keyed pseudonym, and the one name a nominative ticket must print, encrypted.

- **Normalisation** (our design): Unicode NFKD, combining marks dropped, case folded, every run
  of spaces, hyphens, apostrophes and dots made one space, trimmed; given names keep their
  order. "Élodie-Marie  D'Arc" and "elodie marie d arc" are the same person.
- **Pseudonym**: ``HMAC-SHA-256(secret, "taj-pseudonym-v1" 0x00 family 0x00 given 0x00
  YYYY-MM-DD)`` in hex, the secret from ``programme.pseudonym_secret``: the same person gives
  the same pseudonym in every programme (so a double benefit is seen), and without the secret
  a pseudonym cannot be linked back to a name by trying names.
- **Name box**: the printed name, AES-256-GCM under ``programme.name_key``, with the games and
  the pseudonym as associated data (a ciphertext moved to another person does not open).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from datetime import date

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from guichet.config import ProgrammeConfig
from guichet.files import secret_from_config_or_file

PSEUDONYM_VERSION = "taj-pseudonym-v1"
#: Spaces, hyphen-minus, apostrophes (ASCII and U+2019), dots, the Unicode hyphens and dashes.
_SEPARATORS = re.compile("[\\s\\-'\u2019.\u2010-\u2015]+")
_NONCE = 12


class NameBoxError(Exception):
    """A name ciphertext does not open (another key, another person, or altered)."""


def normalise(text: str) -> str:
    """A name as compared: no accents, case folded, separators made single spaces."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _SEPARATORS.sub(" ", bare.casefold()).strip()


def pseudonym(secret: bytes, family: str, given: str, birth: date) -> str:
    """The keyed pseudonym of a person (64 hex characters)."""
    message = "\x00".join(
        (PSEUDONYM_VERSION, normalise(family), normalise(given), birth.isoformat())
    )
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def _aad(games: str, person: str) -> bytes:
    return f"taj-name\x00{games}\x00{person}".encode()


class NameBox:
    """Encrypts and opens the printed name of one games' beneficiaries."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the programme name key must be 32 bytes")
        self._aead = AESGCM(key)

    def seal(self, games: str, person: str, name: str) -> str:
        """``name`` encrypted for ``person`` (base64url of nonce || ciphertext)."""
        nonce = secrets.token_bytes(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, name.encode(), _aad(games, person))
        return base64.urlsafe_b64encode(sealed).decode()

    def open(self, games: str, person: str, sealed: str) -> str:
        try:
            raw = base64.urlsafe_b64decode(sealed.encode())
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _aad(games, person))
        except (InvalidTag, ValueError):
            raise NameBoxError("the name does not open with this key for this person") from None
        return plain.decode()


def pseudonym_secret(cfg: ProgrammeConfig) -> bytes:
    """``programme.pseudonym_secret`` (>= 32 bytes), else a local file made on first use."""
    return secret_from_config_or_file(cfg.pseudonym_secret, cfg.pseudonym_secret_file,
                                "programme.pseudonym_secret", 32, exact=False)  # fmt: skip


def name_box(cfg: ProgrammeConfig) -> NameBox:
    """The name box of ``programme.name_key`` (32 bytes), else a local file made on first use."""
    return NameBox(secret_from_config_or_file(cfg.name_key, cfg.name_key_file,
                                        "programme.name_key", 32, exact=True))  # fmt: skip
