"""The proof-of-work door: the challenges a room hands out at join and the check of a solution.

A challenge is an HS256 token (PyJWT, keyed with a key derived from the queue-ticket secret)
binding the room, the account, a random nonce (``jti``), the difficulty ``bits`` and its
expiry (``exp``). A solution is a decimal counter such that SHA-256 of
``token + ":" + solution`` starts with at least ``bits`` zero bits (hashcash): about
``2**bits`` tries to find, one hash to check. Single use is enforced by join.lua (the nonce is
spent in Redis). Pure code: no aiohttp, no Redis.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import jwt
import msgspec
from msgspec import Meta

from guichet import errors, wire
from guichet.auth import DECODE_FAILURES, timestamp

ALGORITHM: Literal["sha256-leading-zero-bits"] = "sha256-leading-zero-bits"
AUDIENCE = "guichet-challenge:"
MAX_BITS = 30
MAX_TOKEN_CHARS = 1024
#: Keeps challenge tokens apart from queue tickets signed with the same secret.
_KEY_LABEL = b"guichet room challenge v1"
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}", re.ASCII)

Reason = Literal["missing", "wrong", "expired", "forged", "foreign", "replayed"]
REASONS: tuple[Reason, ...] = ("missing", "wrong", "expired", "forged", "foreign", "replayed")
#: The problem type of a join refused at the door.
SLUG = "challenge-required"


class JoinProof(wire.Base, kw_only=True):
    """The optional body of a join: the solution of the room's challenge."""

    challenge: Annotated[str, Meta(min_length=1, max_length=MAX_TOKEN_CHARS,
                                   description="the `token` of the challenge solved")]  # fmt: skip
    solution: Annotated[str, Meta(pattern=wire.whole(r"[0-9]{1,20}"),
                                  description="decimal counter that solves it")]  # fmt: skip
    solve_ms: Annotated[int, Meta(ge=0, le=600_000, description="time the client took")] | None = (
        None
    )


class ChallengeOffer(wire.Reply, kw_only=True):
    """A challenge to solve before joining (the ``challenge`` member of the 403 problem)."""

    token: str
    bits: int
    algorithm: Literal["sha256-leading-zero-bits"]
    expires_at: str


class ChallengeProblemBody(errors.ProblemBody, kw_only=True, omit_defaults=True):
    """The 403 ``challenge-required`` problem: why the proof was refused and a fresh one."""

    reason: Reason
    challenge: ChallengeOffer


class ChallengeRequired(errors.Problem):
    """403: the room wants a valid proof of work; carries a fresh challenge."""

    def __init__(self, reason: Reason, detail: str, offer: ChallengeOffer) -> None:
        super().__init__(403, SLUG, "Challenge required", detail)
        self.reason = reason
        self.offer = offer

    def body(self, instance: str) -> ChallengeProblemBody:
        return ChallengeProblemBody(
            type=errors.TYPE_BASE + self.slug,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            reason=self.reason,
            challenge=self.offer,
        )


@dataclass(frozen=True, slots=True)
class Challenge:
    """A verified challenge."""

    room: str
    account: str
    nonce: str
    bits: int
    expires_at: int  # UNIX seconds


class Refused(Exception):
    """A proof refused at the door, with its reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def leading_zero_bits(digest: bytes) -> int:
    """How many zero bits ``digest`` starts with."""
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def meets(token: str, solution: str, bits: int) -> bool:
    """Whether ``solution`` solves ``token`` at ``bits``: one SHA-256."""
    digest = hashlib.sha256(f"{token}:{solution}".encode()).digest()
    return leading_zero_bits(digest) >= bits


def solve(token: str, bits: int, start: int = 0) -> str:
    """The first solution from ``start`` (what the page does; tests and measurements)."""
    prefix = hashlib.sha256(f"{token}:".encode())
    counter = start
    while True:
        h = prefix.copy()
        h.update(str(counter).encode())
        if leading_zero_bits(h.digest()) >= bits:
            return str(counter)
        counter += 1


def challenge_key(secret: bytes) -> bytes:
    """The HS256 key of challenges, derived from the queue-ticket secret (HMAC-SHA-256)."""
    return hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()


class Challenger:
    """Issues challenges and checks proofs (the token check plus one SHA-256)."""

    def __init__(self, secret: bytes, issuer: str, ttl_s: int) -> None:
        if len(secret) < 32:
            raise ValueError("the challenge secret must be at least 32 bytes")
        self._key = challenge_key(secret)
        self._issuer = issuer
        self.ttl_s = ttl_s

    def issue(self, room: str, account: str, bits: int, now: float) -> ChallengeOffer:
        """A fresh challenge for ``account`` in ``room`` at difficulty ``bits``."""
        exp = int(now) + self.ttl_s
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": AUDIENCE + room,
            "sub": account,
            "jti": secrets.token_urlsafe(16),
            "bits": bits,
            "exp": exp,
        }
        token = jwt.encode(claims, self._key, algorithm="HS256")
        return ChallengeOffer(
            token=token, bits=bits, algorithm=ALGORITHM, expires_at=wire.rfc3339(exp)
        )

    def verify(
        self, proof: JoinProof | None, room: str, account: str, bits: int, now: float
    ) -> Challenge:
        """The challenge ``proof`` solves for ``account`` in ``room`` at ``bits`` or more, or
        :class:`Refused`. Checks, in order: present, signed by us, this room and account, not
        expired, hard enough, solved. Single use is join.lua's."""
        if proof is None:
            raise Refused("missing", "this room asks for a proof of work: solve the challenge")
        c = self._decode(proof.challenge)
        if c.room != room or c.account != account:
            raise Refused("foreign", "this challenge was issued for another account or room")
        if c.expires_at <= now:
            raise Refused("expired", "this challenge has expired")
        if c.bits < bits:
            raise Refused("expired", "the room's difficulty was raised since this challenge")
        if not meets(proof.challenge, proof.solution, c.bits):
            raise Refused("wrong", "the solution does not solve the challenge")
        return c

    def _decode(self, token: str) -> Challenge:
        if len(token) > MAX_TOKEN_CHARS or not re.fullmatch(wire.JWS, token):
            raise Refused("forged", "not a challenge issued here")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                issuer=self._issuer,
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "require": ["iss", "aud", "sub", "jti", "bits", "exp"],
                },
            )
        except (jwt.PyJWTError, *DECODE_FAILURES):
            raise Refused("forged", "not a challenge issued here") from None
        aud, sub, jti, bits, exp = (claims[k] for k in ("aud", "sub", "jti", "bits", "exp"))
        if not (
            isinstance(aud, str)
            and aud.startswith(AUDIENCE)
            and isinstance(sub, str)
            and isinstance(jti, str)
            and _NONCE.fullmatch(jti)
            and type(bits) is int
            and 0 <= bits <= MAX_BITS
            and type(exp) is int
            and timestamp(exp)
        ):
            raise Refused("forged", "not a challenge issued here")
        return Challenge(aud.removeprefix(AUDIENCE), sub, jti, bits, exp)


def decode_proof(body: bytes) -> JoinProof | None:
    """The join body: None when empty, ``{}`` or ``null`` (no proof), else a
    :class:`JoinProof` (a 400/422 problem naming the field when it is not one)."""
    if not body.strip():
        return None
    try:
        if msgspec.json.decode(body) in ({}, None):
            return None
    except msgspec.DecodeError:
        pass  # wire.decode names what is wrong
    return wire.decode(body, JoinProof)
