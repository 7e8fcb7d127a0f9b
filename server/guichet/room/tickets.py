"""Queue tickets (HS256 JWTs, only Guichet reads them) and the check of admission tokens (EdDSA
JWTs signed by the room's :class:`guichet.signing.Keyring`, which the protected site verifies
with ``/.well-known/jwks.json``).

A queue ticket says: this account holds ticket ``tid`` in this room. Its claims are fixed for
an account, so joining again returns the very same string. A verified ticket is remembered
(bounded cache) so that a status poll costs a dict lookup, not an HMAC.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from guichet import signing
from guichet.auth import DECODE_FAILURES, Refused, compact_jws, printable, timestamp
from guichet.cache import Bounded
from guichet.config import RoomsConfig
from guichet.files import write_once
from guichet.signing import KeySource

TICKET_AUDIENCE = "guichet-queue:"
TICKET_LIFETIME_AFTER_CLOSE_S = 30 * 86_400  # outlives any sane closes_at extension
#: The ticket ids join.lua hands out: kind, index in the queue, joined (UNIX seconds).
_TID = re.compile(r"[pn]:[0-9]{1,15}:[0-9]{1,12}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Ticket:
    """A verified queue ticket (parsed once: verified tickets are cached)."""

    room: str
    account: str
    tid: str  # "p:<i>:<joined s>" (pre-queue) or "n:<i>:<joined s>"
    expires_at: float
    admitted_until: float | None = None  # set on the ticket re-issued at admission
    prequeue: bool = field(init=False)
    index: int = field(init=False)
    joined_at: float = field(init=False)

    def __post_init__(self) -> None:
        kind, index, joined = self.tid.split(":")
        object.__setattr__(self, "prequeue", kind == "p")
        object.__setattr__(self, "index", int(index))
        object.__setattr__(self, "joined_at", float(joined))


def ticket_secret(cfg: RoomsConfig) -> bytes:
    """The HS256 key of queue tickets: from config, else a local file made on first use."""
    if cfg.ticket_secret is not None:
        return cfg.ticket_secret.encode()
    path = Path(cfg.ticket_secret_file)
    if not path.exists():
        write_once(path, secrets.token_hex(32).encode())
    return path.read_bytes().strip()


class TicketSigner:
    """Signs and verifies queue tickets, remembering those it has verified."""

    def __init__(self, secret: bytes, issuer: str, cache_size: int) -> None:
        if len(secret) < 32:
            raise ValueError("the ticket secret must be at least 32 bytes")
        self._secret = secret
        self._issuer = issuer
        self._cache: Bounded[str, Ticket] = Bounded(cache_size)
        self._signed: Bounded[tuple[str, str, str, int, int | None], str] = Bounded(cache_size)

    def sign(
        self,
        room: str,
        account: str,
        tid: str,
        closes_at: float,
        admitted_until: float | None = None,
    ) -> str:
        """The ticket's token; the same claims give the same string, signed once."""
        exp = int(closes_at) + TICKET_LIFETIME_AFTER_CLOSE_S
        adm = None if admitted_until is None else int(admitted_until)
        memo = (room, account, tid, exp, adm)
        token = self._signed.get(memo)
        if token is not None:
            return token
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": TICKET_AUDIENCE + room,
            "sub": account,
            "tid": tid,
            "exp": exp,
        }
        if adm is not None:
            claims["adm"] = adm
        token = jwt.encode(claims, self._secret, algorithm="HS256")
        self._signed.put(memo, token)
        # What we signed needs no verification when it comes back.
        self._cache.put(token, Ticket(room, account, tid, float(exp), adm))
        return token

    def verify(self, token: str, room: str, now: float | None = None) -> Ticket:
        """The ticket, or :class:`Refused` (reason: forged, expired, other_room, malformed)."""
        ticket = self._cache.get(token)
        if ticket is None:
            ticket = self._decode(token)
            self._cache.put(token, ticket)
        if ticket.room != room:
            raise Refused("other_room", "this ticket is for another room")
        if ticket.expires_at <= (time.time() if now is None else now):
            raise Refused("expired", "this ticket has expired")
        return ticket

    def _decode(self, token: str) -> Ticket:
        if len(token) > 2048:
            raise Refused("malformed", "ticket too long")
        compact_jws(token, "ticket")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                issuer=self._issuer,
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "require": ["iss", "aud", "sub", "tid", "exp"],
                },
            )
        except jwt.InvalidSignatureError:
            raise Refused("forged", "ticket signature does not verify") from None
        except (jwt.PyJWTError, *DECODE_FAILURES):
            raise Refused("malformed", "ticket is not a valid queue ticket") from None
        aud, sub, tid, exp = claims["aud"], claims["sub"], claims["tid"], claims["exp"]
        adm = claims.get("adm")
        # Correctly signed is not enough: a claim of the wrong shape would fail far away.
        if not (
            isinstance(aud, str)
            and aud.startswith(TICKET_AUDIENCE)
            and printable(sub)
            and isinstance(tid, str)
            and _TID.fullmatch(tid)
            and isinstance(exp, int)
            and timestamp(exp)
            and (adm is None or (isinstance(adm, int) and timestamp(adm)))
        ):
            raise Refused("malformed", "ticket claims are not as issued")
        return Ticket(
            aud.removeprefix(TICKET_AUDIENCE),
            sub,
            tid,
            float(exp),
            None if adm is None else float(adm),
        )


# --- admission tokens ------------------------------------------------------------------------

#: Claims every admission token carries (``sub``, ``room`` and ``sid`` are ids).
_ADMISSION_CLAIMS = ("exp", "sub", "room", "sid")


def verify_admission(keys: KeySource, token: str, *, audience: str, issuer: str) -> dict[str, Any]:
    """The claims of an admission token signed by one of ``keys`` (the room's keyring), or
    :class:`Refused` (reason: forged, expired, malformed)."""
    claims = signing.verify(
        keys,
        token,
        what="admission token",
        audience=audience,
        issuer=issuer,
        require=_ADMISSION_CLAIMS,
    )
    if not all(printable(claims[name], 256) for name in ("sub", "room", "sid")):
        raise Refused("malformed", "admission token claims are not as issued")
    return claims


def verify_admission_late(
    keys: KeySource, token: str, *, audience: str, issuer: str
) -> dict[str, Any]:
    """As :func:`verify_admission`, but an expired token is accepted (signing.verify_late):
    the protected site may revoke a session after its token expired."""
    claims = signing.verify_late(
        keys,
        token,
        what="admission token",
        audience=audience,
        issuer=issuer,
        require=_ADMISSION_CLAIMS,
    )
    if not all(printable(claims[name], 256) for name in ("sub", "room", "sid")):
        raise Refused("malformed", "admission token claims are not as issued")
    return claims
