"""The shop's Redis side: sales, catalogue, holds (one script per decision), audit."""

from __future__ import annotations

import hashlib
import itertools
import secrets
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec

from guichet.audit import acts
from guichet.audit.act import Act
from guichet.refusals import code_of
from guichet.shop import model
from guichet.shop.refusals import (
    ConfirmCode,
    HoldAnswer,
    LoadCode,
    ReleaseCode,
    decode_hold,
)
from guichet.store import keys
from guichet.store.client import Store
from guichet.store.keys import SaleKeys, subject_digest
from guichet.store.scripts import LuaScript
from guichet.units import US_PER_S

LOAD = LuaScript("guichet.shop", "load.lua")
HOLD = LuaScript("guichet.shop", "hold.lua")
CONFIRM = LuaScript("guichet.shop", "confirm.lua")
RELEASE = LuaScript("guichet.shop", "release.lua")
EXPIRE = LuaScript("guichet.shop", "expire.lua")
LEVELS = LuaScript("guichet.shop", "levels.lua")
RULES = LuaScript("guichet.shop", "rules.lua")
SCRIPTS = (LOAD, HOLD, CONFIRM, RELEASE, EXPIRE, LEVELS, RULES)

IDEMPOTENCY_TTL_S = 24 * 3600


@dataclass(frozen=True)
class HoldRecord:
    """A hold as stored (``holds`` hash), decoded."""

    id: str
    account: str
    state: model.HoldState
    items: list[tuple[str, int, str]]  # (field, quantity, session)
    tickets: int
    packs: int
    expires_us: int
    payment_reference: str | None
    confirmed_us: int | None = None  # when it was confirmed (e-tickets are dated by it)

    @classmethod
    def decode(cls, hold_id: str, raw: bytes | str) -> HoldRecord:
        r = msgspec.json.decode(raw)
        return cls(
            id=hold_id,
            account=r["account"],
            state=r["state"],
            items=[(f, int(q), s) for f, q, s in r["items"]],
            tickets=int(r["tickets"]),
            packs=int(r["packs"]),
            expires_us=int(r["expires_us"]),
            payment_reference=r.get("payment_reference"),
            confirmed_us=int(r["confirmed_us"]) if "confirmed_us" in r else None,
        )


class Loaded(NamedTuple):
    """load.lua's answer: 'ok' with the number of items, or 'below_taken' with the item."""

    code: LoadCode
    detail: str


class Confirmed(NamedTuple):
    """confirm.lua's answer, and how many local AOF fsyncs covered it (WAITAOF)."""

    code: ConfirmCode
    record: HoldRecord | None
    fsynced: int


class Released(NamedTuple):
    """release.lua's answer: the code and the hold as it is now."""

    code: ReleaseCode
    record: HoldRecord | None


@dataclass(frozen=True)
class Levels:
    """One consistent read of a sale's counts, per item."""

    loaded: dict[str, int]
    stock: dict[str, int]
    held: dict[str, int]
    sold: dict[str, int]


def fingerprint(request: model.HoldRequest) -> str:
    """What an idempotency key is bound to: the request's canonical bytes."""
    return hashlib.sha256(msgspec.json.encode(request)).hexdigest()[:32]


def account_tag(account: str) -> str:
    """The account's key in the sale's usage hash (a digest: no raw id in field names)."""
    return subject_digest(account)


def _ints(raw: dict[Any, Any]) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in raw.items()}


def _pairs(flat: list[bytes]) -> dict[str, int]:
    return {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}


class Shop:
    """Sales: rules, catalogue, holds."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._sale_keys: dict[str, SaleKeys] = {}
        self._id_prefix = secrets.token_urlsafe(6)
        self._ids = itertools.count(1)

    # --- configuration -------------------------------------------------------------------------

    async def put(self, sale: str, spec: model.SaleSpec, act: Act | None = None) -> bool:
        """Create or replace the sale's rules and bump their version (``rules.lua``); True when
        it is new."""
        k = SaleKeys(sale)
        fields: dict[str, Any] = {
            "spec": msgspec.json.encode(spec),
            "phase": spec.phase,
            "window_required": "1" if spec.window_required else "0",
            "hold_ttl_us": spec.hold_ttl_s * US_PER_S,
            "max_tickets": spec.max_tickets,
            "max_packs": spec.max_packs,
            "max_per_session": spec.max_per_session,
            "max_per_session_limited": spec.max_per_session_limited,
            "pack_max_per_session": spec.pack_max_per_session,
        }
        opens_us, closes_us = spec.period_us()
        fields["opens_us"] = "" if opens_us is None else opens_us  # '': no bound (hold.lua)
        fields["closes_us"] = "" if closes_us is None else closes_us
        act = act or acts.internal("sale.put", f"sale:{sale}")
        ks, args = acts.keys_args(act, [k.cfg], [x for pair in fields.items() for x in pair])
        created, _version = await self.store.scripts(RULES, ks, args)
        await self.store.client.sadd(keys.SALES_INDEX, sale)
        return bool(created)

    async def spec(self, sale: str) -> model.SaleSpec | None:
        rules = await self.rules(sale)
        return None if rules is None else rules[0]

    async def rules(self, sale: str) -> tuple[model.SaleSpec, int] | None:
        """The sale's rules and their version (one HMGET: the two agree)."""
        raw, version = await self.store.client.hmget(SaleKeys(sale).cfg, ["spec", "version"])
        if raw is None:
            return None
        return msgspec.json.decode(raw, type=model.SaleSpec), int(version or 0)

    async def version(self, sale: str) -> int:
        """The version of the sale's rules (0: no sale, or rules from before versions)."""
        return int(await self.store.client.hget(SaleKeys(sale).cfg, "version") or 0)

    async def ids(self) -> list[str]:
        members: set[Any] = await self.store.client.smembers(keys.SALES_INDEX)
        return sorted(m.decode() for m in members)

    async def load(self, sale: str, catalogue: model.Catalogue, act: Act | None = None) -> Loaded:
        """Load or update the catalogue, all or nothing: ('ok', n) or ('below_taken', item)."""
        k = SaleKeys(sale)
        items: list[Any] = []
        sessions: list[Any] = []
        for s in catalogue.sessions:
            for c in s.categories:
                items += [model.item_key(s.id, c.id), c.seats]
            sessions += [s.id, "1" if s.limited else "0", msgspec.json.encode(s)]
        act = act or acts.internal("sale.catalogue", f"sale:{sale}")
        ks, args = acts.keys_args(
            act,
            [k.loaded, k.stock, k.held, k.sold, k.limited, k.sessions],
            [len(items) // 2, *items, *sessions],
        )
        code, detail = await self.store.scripts(LOAD, ks, args)
        return Loaded(code_of(code, LoadCode, "load"), detail.decode())

    async def sessions(self, sale: str) -> dict[str, model.SessionSpec]:
        raw: dict[Any, Any] = await self.store.client.hgetall(SaleKeys(sale).sessions)
        return {k.decode(): msgspec.json.decode(v, type=model.SessionSpec) for k, v in raw.items()}

    # --- holds -------------------------------------------------------------------------------

    async def hold(
        self,
        sale: str,
        phase: str,
        account: str,
        idempotency_key: str,
        request: model.HoldRequest,
        *,
        version: int | None = None,
    ) -> HoldAnswer:
        """The hold script's answer (see hold.lua), decoded. With ``version`` (the rules the
        caller checked the request against), a change of rules since answers ``stale``."""
        k = self._keys(sale)
        lines = "".join(
            f"{field} {field.partition(':')[0]} {quantity}\n"
            for field, quantity in model.merged(request.lines()).items()
        )
        raw = await self.store.scripts(
            HOLD,
            [k.cfg, k.stock, k.held, k.usage, k.holds, k.expiries, k.windows(phase),
             k.idempotency(account, idempotency_key), k.limited],
            [account, account_tag(account), self._new_id(), fingerprint(request),
             IDEMPOTENCY_TTL_S, len(request.packs or ()), lines,
             "" if version is None else version],
        )  # fmt: skip
        return decode_hold(raw)

    def _keys(self, sale: str) -> SaleKeys:
        k = self._sale_keys.get(sale)
        if k is None:
            k = self._sale_keys[sale] = SaleKeys(sale)
        return k

    def _new_id(self) -> str:
        """A hold id: this process's random prefix and a counter (unique, and only its
        account can use it, so it need not be unguessable)."""
        return f"{self._id_prefix}{next(self._ids):x}"

    async def record(self, sale: str, hold_id: str) -> HoldRecord | None:
        raw: Any = await self.store.client.hget(SaleKeys(sale).holds, hold_id)
        return None if raw is None else HoldRecord.decode(hold_id, raw)

    async def confirm(
        self, sale: str, account: str, hold_id: str, payment: str, timeout_ms: int
    ) -> Confirmed:
        """(code, record, local AOF fsyncs): see confirm.lua; the reply waits for WAITAOF."""
        k = SaleKeys(sale)
        (code, raw), fsynced = await self.store.scripts.durable(
            CONFIRM,
            [
                k.holds,
                k.stock,
                k.held,
                k.sold,
                k.usage,
                k.expiries,
                k.windows("packs"),
                k.windows("singles"),
                k.purchases,
                k.bought(account),
            ],
            [hold_id, account, payment],
            timeout_ms,
        )
        record = HoldRecord.decode(hold_id, raw) if raw else None
        return Confirmed(code_of(code, ConfirmCode, "confirm"), record, fsynced)

    async def release(self, sale: str, account: str, hold_id: str) -> Released:
        k = SaleKeys(sale)
        code, raw = await self.store.scripts(
            RELEASE, [k.holds, k.stock, k.held, k.usage, k.expiries], [hold_id, account]
        )
        record = HoldRecord.decode(hold_id, raw) if raw else None
        return Released(code_of(code, ReleaseCode, "release"), record)

    async def expire(self, sale: str, batch: int) -> int:
        """Return the holds past their expiry to stock (at most ``batch``)."""
        k = SaleKeys(sale)
        return int(
            await self.store.scripts(
                EXPIRE, [k.expiries, k.holds, k.stock, k.held, k.usage], [batch]
            )
        )

    # --- reading -----------------------------------------------------------------------------

    async def usage(self, sale: str, account: str) -> tuple[int, int, int]:
        """(tickets held or sold, of which held, packs) of an account."""
        tag = account_tag(account)
        raw: list[Any] = await self.store.client.hmget(
            SaleKeys(sale).usage, [f"{tag}:t", f"{tag}:h", f"{tag}:p"]
        )
        tickets, held, packs = (int(x or 0) for x in raw)
        return tickets, held, packs

    async def stock(self, sale: str) -> dict[str, int]:
        raw: dict[Any, Any] = await self.store.client.hgetall(SaleKeys(sale).stock)
        return _ints(raw)

    async def levels(self, sale: str) -> Levels:
        """loaded, stock, held and sold read in one script (a consistent snapshot)."""
        k = SaleKeys(sale)
        replies = await self.store.scripts(LEVELS, [k.loaded, k.stock, k.held, k.sold])
        loaded, stock, held, sold = (_pairs(r) for r in replies)
        return Levels(loaded, stock, held, sold)


def audit(levels: Levels) -> list[str]:
    """Breaches of the invariant available + held + sold = loaded (and no count below 0)."""
    problems = []
    fields = set(levels.loaded) | set(levels.stock) | set(levels.held) | set(levels.sold)
    for f in sorted(fields):
        loaded = levels.loaded.get(f, 0)
        a, h, s = levels.stock.get(f, 0), levels.held.get(f, 0), levels.sold.get(f, 0)
        if a + h + s != loaded:
            problems.append(f"{f}: available {a} + held {h} + sold {s} != loaded {loaded}")
        if min(a, h, s) < 0:
            problems.append(f"{f}: a count is negative (available {a}, held {h}, sold {s})")
    return problems
