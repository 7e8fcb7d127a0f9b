"""E-tickets on the store: an account's tickets (derived from its purchases), signed; the
gate's scan (signature checked here, the once-only mark in ``scan.lua``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

from guichet import wire
from guichet.audit import acts
from guichet.audit.act import Act
from guichet.auth import Refused
from guichet.config import EticketsConfig
from guichet.eticket import model
from guichet.programme import tickets as programme_tickets
from guichet.programme.model import GAMES
from guichet.refusals import code_of
from guichet.shop.service import HoldRecord
from guichet.signing import Keyring, verify
from guichet.store.client import Store
from guichet.store.keys import SaleKeys
from guichet.store.scripts import LuaScript
from guichet.units import US_PER_S

SCAN = LuaScript("guichet.eticket", "scan.lua")
SCRIPTS = (SCAN,)

ScanCode = Literal["ok", "already_used", "unknown"]
#: Why a scan is refused: the payload's (signature checks) or the script's.
ScanRefused = Literal["malformed", "forged", "expired", "already_used", "unknown"]
DAY_S = 24 * 3600
#: Claims every ticket payload carries; a sale's ticket also carries model.REQUIRED, a State
#: programme's ticket ``prg`` and the claims of programme/tickets.py.
COMMON_REQUIRED = ("iss", "aud", "tid", "iat", "exp")


@dataclass(frozen=True)
class Issued:
    """A ticket as its buyer sees it: the seat, its signed payload, its first scan if any."""

    seat: model.Seat
    payload: str
    used: tuple[int, str] | None  # (µs, gate)


class Scan(NamedTuple):
    """A scan's outcome: accepted (``code`` 'ok') or why not; the seat when the payload named
    one; the first scan (µs, gate) when accepted or already used."""

    code: Literal["ok"] | ScanRefused
    seat: model.Seat | None
    used: tuple[int, str] | None


class Etickets:
    """Tickets of confirmed purchases: listed, signed, scanned once."""

    def __init__(self, store: Store, keyring: Keyring, cfg: EticketsConfig) -> None:
        self.store = store
        self.keyring = keyring
        self.cfg = cfg
        self.valid_s = cfg.valid_days * DAY_S

    def sign(self, seat: model.Seat, confirmed_us: int) -> str:
        """The ticket's payload: a compact JWS (EdDSA, deterministic for one key)."""
        issued_s = confirmed_us // US_PER_S
        return self.keyring.sign(model.claims(
            seat, issuer=self.cfg.issuer, audience=self.cfg.audience, issued_s=issued_s,
            valid_s=self.valid_s))  # fmt: skip

    async def of_account(self, sale: str, account: str) -> list[Issued]:
        """Every ticket of the account's confirmed purchases in ``sale``."""
        k = SaleKeys(sale)
        members: set[Any] = await self.store.client.smembers(k.bought(account))
        holds = sorted(m.decode() for m in members)
        if not holds:
            return []
        raws: list[Any] = await self.store.client.hmget(k.holds, holds)
        records = [HoldRecord.decode(h, raw) for h, raw in zip(holds, raws, strict=True) if raw]
        return await self._issued(sale, [r for r in records if _bought_by(r, account)])

    async def one(self, sale: str, account: str, ticket: str) -> Issued | None:
        """One of the account's tickets, or None (no such ticket, or another's)."""
        parsed = model.parse_ticket_id(ticket)
        if parsed is None:
            return None
        raw: Any = await self.store.client.hget(SaleKeys(sale).holds, parsed[0])
        record = None if raw is None else HoldRecord.decode(parsed[0], raw)
        if record is None or not _bought_by(record, account):
            return None
        found = [i for i in await self._issued(sale, [record]) if i.seat.id == ticket]
        return found[0] if found else None

    async def _issued(self, sale: str, records: list[HoldRecord]) -> list[Issued]:
        out: list[tuple[model.Seat, int]] = []
        for r in records:
            out += [(s, r.confirmed_us or 0) for s in model.seats(sale, r.id, r.account, r.items)]
        if not out:
            return []
        used: list[Any] = await self.store.client.hmget(
            SaleKeys(sale).scans, [s.id for s, _ in out]
        )
        return [
            Issued(s, self.sign(s, at), None if u is None else model.used_record(u.decode()))
            for (s, at), u in zip(out, used, strict=True)
        ]

    async def scan(self, payload: str, gate: str, act: Act | None = None) -> Scan:
        """Check the payload's signature (ticket keyring, issuer, audience, expiry), then mark
        the ticket used if it was not (atomic, ``scan.lua``). An accepted scan writes the
        record of ``act``, its object set here: ``sale:<S>`` (a sale's ticket) or
        ``programme:<P>/ticket:<T>`` (a State programme's, in the games' chain)."""
        try:
            c = verify(self.keyring, payload, what="ticket", audience=self.cfg.audience,
                       issuer=self.cfg.issuer, require=COMMON_REQUIRED)  # fmt: skip
        except Refused as exc:
            reason: ScanRefused = "expired" if exc.reason == "expired" else (
                "forged" if exc.reason == "forged" else "malformed")  # fmt: skip
            return Scan(reason, None, None)
        if "prg" in c:
            return await self._scan_programme(c, gate, act)
        seat = model.seat_of(c) if all(k in c for k in model.REQUIRED) else None
        if seat is None:  # signed by us, yet not a ticket's claims: never issued as such
            return Scan("malformed", None, None)
        k = SaleKeys(seat.sale)
        act = replace(act or acts.internal("gate.scan", ""), object=f"sale:{seat.sale}")
        ks, args = acts.keys_args(
            act, [k.holds, k.scans], [seat.id, seat.hold, seat.number, seat.account, gate]
        )
        raw_code, record = await self.store.scripts(SCAN, ks, args)
        code: ScanCode = code_of(raw_code, ScanCode, "scan")
        used = model.used_record(record.decode()) if record else None
        return Scan(code, seat, used)

    async def _scan_programme(self, c: dict[str, Any], gate: str, act: Act | None) -> Scan:
        """A State programme ticket (programme/tickets.py): marked used once in its games; an
        accepted scan writes the record of ``act`` (object ``programme:<P>/ticket:<T>``)."""
        fields = [c.get(k) for k in ("tid", "prg", "gms", "ses", "cat")]
        if not all(isinstance(f, str) and 0 < len(f) <= 128 for f in fields):
            return Scan("malformed", None, None)
        tid, prg, gms, ses, cat = (str(f) for f in fields)
        if gms not in GAMES or not wire.valid_slug(prg):
            return Scan("malformed", None, None)
        raw_code, record = await programme_tickets.scan(self.store, gms, prg, tid, gate, act)
        code: ScanCode = code_of(raw_code.encode(), ScanCode, "tickets_scan")
        seat = model.Seat(tid, "", 0, "", ses, cat, "", programme=prg)
        return Scan(code, seat, model.used_record(record) if record else None)


def _bought_by(r: HoldRecord, account: str) -> bool:
    return r.account == account and r.state == "confirmed"
