"""The draw's Redis side seen from the server: configuration, commitment, registration,
entries and their windows (one script per decision; the batch jobs are in run.py, waves.py)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec

from guichet import wire
from guichet.audit import acts
from guichet.audit.act import Act
from guichet.draw import outbox, seal
from guichet.draw.model import DrawSpec, Entry, Transcript, Window, WindowState
from guichet.draw.refusals import (
    CommitCode,
    MembersCode,
    PutCode,
    PutScriptCode,
    RegisterCode,
    WithdrawCode,
)
from guichet.refusals import code_of
from guichet.signing import JWK
from guichet.store import keys
from guichet.store.client import Store
from guichet.store.keys import DrawKeys, SaleKeys
from guichet.store.scripts import LuaScript
from guichet.units import US_PER_S

REGISTER = LuaScript("guichet.draw", "register.lua")
WITHDRAW = LuaScript("guichet.draw", "withdraw.lua")
PUT = LuaScript("guichet.draw", "put.lua")
COMMIT = LuaScript("guichet.draw", "commit.lua")
WINDOW = LuaScript("guichet.draw", "window.lua")
ENTRY = LuaScript("guichet.draw", "entry.lua")
MEMBERS = LuaScript("guichet.draw", "members.lua")
SCRIPTS = (REGISTER, WITHDRAW, PUT, COMMIT, WINDOW, ENTRY, MEMBERS, *outbox.SCRIPTS)
#: Member ids sent per SADD while a list loads.
MEMBERS_BATCH = 10_000


class Put(NamedTuple):
    """put.lua's answer: created or replaced; refused once committed, or when entries name
    a stratum the new spec leaves out (``stratum`` holds ``entries`` of them)."""

    code: PutCode
    stratum: str = ""
    entries: int = 0


class Registration(NamedTuple):
    """register.lua's answer (the entry as stored, the period in µs, whether it has run)."""

    code: RegisterCode
    entry: str
    opens_us: int
    closes_us: int
    drawn: bool


class Withdrawal(NamedTuple):
    """withdraw.lua's answer and the close (µs) it was judged against."""

    code: WithdrawCode
    closes_us: int


class MembersLoaded(NamedTuple):
    """members.lua's answer: the code and how many members the stratum has now."""

    code: MembersCode
    members: int


@dataclass(frozen=True)
class Commitment:
    code: CommitCode
    commitment: str
    committed_us: int
    closes_us: int


@dataclass(frozen=True)
class DrawState:
    """What the public resource shows beyond the spec."""

    spec: DrawSpec
    commitment: str | None
    committed_us: int | None
    ran_us: int | None
    ranked: int | None


def spec_fields(spec: DrawSpec) -> dict[str, Any]:
    return {
        "spec": msgspec.json.encode(spec),
        "opens_us": int(spec.registration_opens_at.timestamp() * US_PER_S),
        "closes_us": int(spec.registration_closes_at.timestamp() * US_PER_S),
        "strata": ",".join(spec.strata),
        "default_stratum": spec.default_stratum,
        "restricted": ",".join(spec.restricted_strata()),
    }


def registered_entry(draw: str, account: str, value: str) -> Entry:
    """An entry as stored (``"<stratum>:<registered µs>"``), status ``registered``."""
    stratum, _, registered_us = value.partition(":")
    return Entry(
        draw=draw,
        account=account,
        stratum=stratum,
        status="registered",
        registered_at=wire.rfc3339(int(registered_us) / US_PER_S),
    )


def _int(raw: Any) -> int | None:
    return None if raw is None else int(raw)


class Draws:
    """Draw configuration, commitment and registrations."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: Restricted strata per draw as last read: register.lua says 'stale' when they
        #: changed, and the registration asks again with the new ones.
        self._restricted: dict[str, list[str]] = {}

    async def put(self, draw: str, spec: DrawSpec, act: Act | None = None) -> Put:
        """Create or replace the draw's spec: 'created' or 'replaced'; 'committed' once the
        draw is committed, 'orphans' when entries name a stratum it leaves out (both decided in
        put.lua, atomically with the write)."""
        fields = spec_fields(spec)
        args = [x for pair in fields.items() for x in pair]
        k = DrawKeys(draw)
        act = act or acts.internal("draw.put", f"draw:{draw}")
        ks, args = acts.keys_args(act, [k.cfg, k.counts], args)
        raw, added, detail = await self.store.scripts(PUT, ks, args)
        code: PutScriptCode = code_of(raw, PutScriptCode, "put")
        if code == "committed":
            return Put("committed")
        if code == "orphans":
            return Put("orphans", detail.decode(), int(added))
        await self.store.client.sadd(keys.DRAWS_INDEX, draw)
        return Put("created" if int(added) == len(fields) else "replaced")

    async def ensure_defined(self, definitions: tuple[Any, ...]) -> None:
        """Create the config file's draws that do not exist yet (live changes are kept)."""
        for d in definitions:
            if await self.spec(d.id) is None:
                fields = msgspec.to_builtins(d)
                del fields["id"]
                spec = msgspec.convert(fields, DrawSpec, strict=False)
                await self.put(d.id, spec)

    async def ids(self) -> list[str]:
        members: set[Any] = await self.store.client.smembers(keys.DRAWS_INDEX)
        return sorted(m.decode() for m in members)

    async def spec(self, draw: str) -> DrawSpec | None:
        raw: Any = await self.store.client.hget(DrawKeys(draw).cfg, "spec")
        return None if raw is None else msgspec.json.decode(raw, type=DrawSpec)

    async def state(self, draw: str) -> DrawState | None:
        raw: list[Any] = await self.store.client.hmget(
            DrawKeys(draw).cfg, ["spec", "commitment", "committed_us", "ran_us", "ranked"]
        )
        if raw[0] is None:
            return None
        return DrawState(
            spec=msgspec.json.decode(raw[0], type=DrawSpec),
            commitment=None if raw[1] is None else raw[1].decode(),
            committed_us=_int(raw[2]),
            ran_us=_int(raw[3]),
            ranked=_int(raw[4]),
        )

    async def counts(self, draw: str) -> dict[str, int]:
        raw: dict[Any, Any] = await self.store.client.hgetall(DrawKeys(draw).counts)
        return {k.decode(): int(v) for k, v in raw.items()}

    async def signing_keys(self) -> list[JWK]:
        """Every public JWK that signed a published transcript (each draw's stays with it)."""
        ids = await self.ids()
        raw: list[Any] = await asyncio.gather(
            *(self.store.client.hget(DrawKeys(d).cfg, "signing_jwk") for d in ids)
        )
        keys: dict[str, JWK] = {}
        for value in raw:
            if value is not None:
                jwk: JWK = json.loads(value)
                keys[str(jwk.get("kid"))] = jwk
        return [keys[kid] for kid in sorted(keys)]

    async def transcript(self, draw: str) -> Transcript | None:
        raw: Any = await self.store.client.hget(DrawKeys(draw).cfg, "transcript")
        return None if raw is None else msgspec.json.decode(raw, type=Transcript)

    async def commit(self, draw: str, seal_key: bytes, act: Act | None = None) -> Commitment:
        """Make the secret seed, seal it, and store it with its commitment (once, before the
        close). The seed itself never leaves this function unsealed."""
        seed, published = seal.new_seed()
        sealed = seal.seal(seal_key, draw, seed, published)
        act = act or acts.internal("draw.commit", f"draw:{draw}")
        ks, args = acts.keys_args(act, [DrawKeys(draw).cfg], [published, sealed])
        code, value, at, closes = await self.store.scripts(COMMIT, ks, args)
        code = code_of(code, CommitCode, "commit")
        return Commitment(code, value.decode(), int(at), int(closes))

    async def register(
        self, draw: str, account: str, stratum: str, groups: frozenset[str] = frozenset()
    ) -> Registration:
        """(code, entry, opens µs, closes µs, drawn) — see register.lua. ``groups`` are the
        account token's groups: a restricted stratum of the same name admits it."""
        k = DrawKeys(draw)
        restricted = self._restricted.get(draw)
        if restricted is None:
            restricted = await self._read_restricted(draw)
        for _ in range(3):  # a spec changed between two reads: at most a couple of retries
            granted = ",".join(s for s in restricted if s in groups)
            code, entry, opens, closes, ran = await self.store.scripts(
                REGISTER,
                [k.cfg, k.entries_of(account), k.counts, *(k.members(s) for s in restricted)],
                [account, stratum, ",".join(restricted), granted],
            )
            code = code_of(code, RegisterCode, "register")
            if code != "stale":
                return Registration(code, entry.decode(), int(opens), int(closes), ran == b"1")
            restricted = self._restricted[draw] = [s for s in entry.decode().split(",") if s]
        raise RuntimeError(f"draw {draw!r}: its restricted strata keep changing")

    async def _read_restricted(self, draw: str) -> list[str]:
        raw: Any = await self.store.client.hget(DrawKeys(draw).cfg, "restricted")
        found = [s for s in (raw or b"").decode().split(",") if s]
        self._restricted[draw] = found
        return found

    async def load_members(
        self, draw: str, stratum: str, accounts: list[str], act: Act | None = None
    ) -> MembersLoaded:
        """Replace the member list of a restricted stratum (until the commitment): built
        aside in batches, then swapped in by members.lua in one step."""
        k = DrawKeys(draw)
        loading = k.members_loading(stratum)
        await self.store.client.delete(loading)
        for i in range(0, len(accounts), MEMBERS_BATCH):
            await self.store.client.sadd(loading, *accounts[i : i + MEMBERS_BATCH])
        act = act or acts.internal("draw.members", f"draw:{draw}")
        ks, args = acts.keys_args(act, [k.cfg, loading, k.members(stratum)], [stratum])
        code, members = await self.store.scripts(MEMBERS, ks, args)
        return MembersLoaded(code_of(code, MembersCode, "members"), int(members))

    async def member_counts(self, draw: str, strata: list[str]) -> dict[str, int]:
        """How many members ops listed for each of ``strata``."""
        k = DrawKeys(draw)
        counts: list[Any] = await asyncio.gather(
            *(self.store.client.scard(k.members(s)) for s in strata)
        )
        return {s: int(n) for s, n in zip(strata, counts, strict=True)}

    async def is_member(self, draw: str, stratum: str, account: str) -> bool:
        return bool(await self.store.client.sismember(DrawKeys(draw).members(stratum), account))

    async def entry(self, draw: str, account: str) -> Entry | None:
        """The account's entry with its status and, once given, its purchase window (one
        script on the draw's slot; the window, on the sale's, only once the draw has run)."""
        k = DrawKeys(draw)
        raw, ran, spec_raw = await self.store.scripts(
            ENTRY, [k.cfg, k.entries_of(account)], [account]
        )
        if not raw:
            return None
        entry = registered_entry(draw, account, raw.decode())
        if not ran:
            return entry
        entry.status = "not_selected_yet"
        spec = msgspec.json.decode(spec_raw, type=DrawSpec)
        sale = spec.sale
        if sale is not None:
            value: Any = await self.store.client.hget(SaleKeys(sale).windows(spec.phase), account)
            if value is not None:
                starts, ends, from_draw, wave = value.decode().split(":")
                if from_draw == draw:
                    entry.status = "window_assigned"
                    entry.window = Window(
                        sale=sale,
                        starts_at=wire.rfc3339(int(starts) / US_PER_S),
                        ends_at=wire.rfc3339(int(ends) / US_PER_S),
                        wave=int(wave),
                    )
        return entry

    async def window_state(
        self, sale: str, phase: str, account: str
    ) -> tuple[WindowState, int, int]:
        """('open' | 'before' | 'after' | 'none', starts µs, ends µs), by Redis TIME."""
        windows = SaleKeys(sale).windows(phase)
        state, starts, ends = await self.store.scripts(WINDOW, [windows], [account])
        return code_of(state, WindowState, "window"), int(starts), int(ends)

    async def withdraw(self, draw: str, account: str) -> Withdrawal:
        k = DrawKeys(draw)
        code, closes = await self.store.scripts(
            WITHDRAW, [k.cfg, k.entries_of(account), k.counts], [account]
        )
        return Withdrawal(code_of(code, WithdrawCode, "withdraw"), int(closes))
