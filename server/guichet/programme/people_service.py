"""The programme's beneficiaries on the Redis side: registration, groups and their leaders,
mobility counts, guardian and reuse consent, the export of reuse consents, the purge of names.
One script per decision (people_register, _group, _mobility, _update, _purge); every key of a
games in its one slot (``ProgrammeKeys``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import msgspec

from guichet.programme import access, cache, identity, model
from guichet.programme.acting import Acting, run
from guichet.programme.people import (
    Candidate,
    CandidateRecord,
    GroupRecord,
    Guardian,
    Invite,
    ProgrammeView,
    ReuseRecord,
    candidate_record,
    decode_candidate,
    decode_group,
    decode_programme,
    field_checks,
    field_problem,
    guardian_record,
    missing_criterion,
    record_prefix,
    today_utc,
    us,
)
from guichet.programme.people_refusals import (
    GroupCode,
    MobilityCode,
    PeopleRefused,
    PurgeCode,
    RegisterCode,
    UpdateCode,
)
from guichet.refusals import code_of
from guichet.store.client import Store
from guichet.store.keys import ProgrammeKeys
from guichet.store.scripts import LuaScript

REGISTER = LuaScript("guichet.programme", "people_register.lua")
UPDATE = LuaScript("guichet.programme", "people_update.lua")
GROUP = LuaScript("guichet.programme", "people_group.lua")
MOBILITY = LuaScript("guichet.programme", "people_mobility.lua")
PURGE = LuaScript("guichet.programme", "people_purge.lua")
SCRIPTS = (REGISTER, UPDATE, GROUP, MOBILITY, PURGE)
#: Candidate records per people_purge.lua call (each call is one short atomic step).
PURGE_BATCH = 500
_STALE_RETRIES = 5

_DETAILS: dict[str, str] = {
    "not_your_group": "this account does not lead this group of the programme",
    "retention_over": "the programme's retention period is over: no candidate can be added",
    "no_group": "no such group in this programme",
    "no_lottery": "no such lottery in this programme",
    "lottery_closed": "this lottery's candidate list is closed",
    "already_registered": "this person is already a candidate of this programme",
    "group_exists": "this group exists with another leader",
    "leader_busy": "this account already leads another group of the programme",
}


def retention_cutoff(day: date) -> int:
    """When a programme kept until ``day`` may be purged: the end of that day (00:00
    Europe/Paris the next day), in µs."""
    return us(model.paris_midnight(day + timedelta(days=1)))


@dataclass(frozen=True)
class Registered:
    """A registration: the pseudonym operators refer to afterwards, whether the person is a
    minor on the lottery's session day (and so needs a guardian's consent), the record."""

    pseudonym: str
    minor: bool
    session_day: str | None
    record: CandidateRecord


@dataclass(frozen=True)
class ReuseConsentRow:
    pseudonym: str
    version: str
    at_us: int


class People:
    """A programme's beneficiaries, groups and consents."""

    def __init__(
        self, store: Store, secret: bytes | None = None, box: identity.NameBox | None = None
    ) -> None:
        """``secret`` and ``box`` are needed to register (the purge and the rest do without)."""
        self.store = store
        self.client = store.client
        self._secret = secret
        self._box = box

    async def now_us(self) -> int:
        seconds, micros = await self.client.time()
        return int(seconds) * 1_000_000 + int(micros)

    async def keys(self, programme: str) -> ProgrammeKeys:
        """The programme's keys (its games from this worker's cache once seen), or a refusal
        'no_programme'."""
        games = await cache.games_of(self.store, programme)
        if games is None:
            raise PeopleRefused("no_programme", f"no programme {programme!r}")
        return ProgrammeKeys(games)

    async def programme(self, programme: str) -> tuple[ProgrammeKeys, ProgrammeView]:
        """The programme's keys and spec as in Redis now, or a refusal 'no_programme'."""
        k = await self.keys(programme)
        raw = await self.client.hget(k.programmes, programme)
        if raw is None:
            raise PeopleRefused("no_programme", f"no programme {programme!r}")
        cache.remember_spec(self.store, programme, raw)
        return k, decode_programme(raw)

    # --- registration ---------------------------------------------------------------------------

    async def register(
        self, programme: str, c: Candidate, acting: Acting, *, leader: str | None = None,
        group: str | None = None,
    ) -> Registered:  # fmt: skip
        """Register ``c`` (by an operator; or by ``leader`` for its ``group``): one round trip
        (people_register.lua) once this worker knows the programme; the spec it decides on is
        checked by the script (on 'stale', the current one it answers is taken and the call
        made again), the dates against Redis TIME there."""
        k = await self.keys(programme)
        if self._secret is None or self._box is None:
            raise RuntimeError("registering needs the pseudonym secret and the name box")
        checks = field_checks(c)
        valid = all(day is not None for _, day, _ in checks)
        mismatch = group is not None and c.group not in (None, group)
        group = group if group is not None else c.group
        person = identity.pseudonym(self._secret, c.family_name, c.given_names, c.birth_date)
        record = None
        prefix = b""
        if valid:
            record = candidate_record(c, person=person, games=k.games, box=self._box,
                                      actor=acting.actor, group=group)  # fmt: skip
            prefix = record_prefix(record)
        keys = [k.programmes, k.candidates(programme), k.stats(programme),
                k.lottery(programme, c.lottery), k.sessions, k.groups(programme),
                k.leaders(programme), k.calendar]  # fmt: skip
        fields = [x for i, (_, day, _) in enumerate(checks)
                  for x in (i, "" if day is None else day)]  # fmt: skip
        majority = (record.majority_on or "") if record is not None else ""
        for _ in range(_STALE_RETRIES):
            raw_spec = cache.spec(self.store, programme)
            spec = decode_programme(raw_spec) if raw_spec else None
            missing = "" if spec is None else (missing_criterion(spec.criteria, c.criteria) or "")
            until = None if spec is None else spec.retention_until
            cutoff = "" if until is None else str(retention_cutoff(until))
            args = [programme, person, prefix, group or "", leader or "", cutoff, majority,
                    raw_spec, missing, "1" if mismatch else "", len(checks), *fields]  # fmt: skip
            raw_code, minor, day = await run(
                self.store,
                REGISTER,
                k,
                keys,
                args,
                acting,
                programme=programme,
                pseudonyms=(person,),
            )
            code: RegisterCode = code_of(raw_code, RegisterCode, "people_register")
            match code:
                case "stale":
                    cache.remember_spec(self.store, programme, day)
                    continue
                case "created":
                    assert record is not None
                    return Registered(person, minor == b"1", day.decode() or None, record)
                case "no_programme":
                    raise PeopleRefused(code, f"no programme {programme!r}")
                case "invalid":
                    raise field_problem(checks[int(day)])
                case "criteria":
                    detail = f"the programme's criterion {missing!r} is not attested"
                    raise PeopleRefused("criteria", detail)
                case "no_group" if mismatch:
                    detail = f"a leader registers candidates of its group {group!r}"
                    raise PeopleRefused("no_group", detail)
                case _:
                    raise PeopleRefused(code, _DETAILS[code])
        raise RuntimeError("the programme's spec keeps changing")

    async def candidate(self, programme: str, person: str, acting: Acting) -> CandidateRecord:
        """The candidate's record: an act of access (recorded, declaration checked)."""
        k = await self.keys(programme)
        raw = await access.read(self.store, k, k.candidates(programme), person, acting,
                                programme=programme, pseudonyms=(person,))  # fmt: skip
        if raw is None:
            raise PeopleRefused("no_candidate", "no such candidate in this programme")
        return decode_candidate(raw)

    # --- consents -------------------------------------------------------------------------------

    async def _update(
        self, programme: str, person: str,
        change: Callable[[CandidateRecord, int], CandidateRecord | None], acting: Acting, *,
        leader: str | None = None,
        group: str | None = None,
    ) -> CandidateRecord:  # fmt: skip
        """Apply ``change(record, now_us) -> new record | None (unchanged)`` atomically (compare
        and set, retried when another act changed the record between)."""
        k = await self.keys(programme)
        key = k.candidates(programme)
        keys = [key, k.leaders(programme), k.stats(programme), k.tickets(programme),
                k.sessions]  # fmt: skip
        # Two round trips, not one: the change is decided here on the decoded record (the JSON
        # is rewritten by msgspec: cjson would round the µs times), so people_update.lua first
        # answers the record and Redis TIME ('stale'), then compares and sets.
        raw, new = b"", b""
        record: CandidateRecord | None = None
        changed: CandidateRecord | None = None
        for _ in range(_STALE_RETRIES):
            group_of = "" if record is None else record.group or ""
            args = [person, raw, new, leader or "", group_of]
            answer, current, now = await run(
                self.store, UPDATE, k, keys, args, acting, programme=programme, pseudonyms=(person,)
            )
            code: UpdateCode = code_of(answer, UpdateCode, "people_update")
            match code:
                case "ok":
                    assert changed is not None
                    return changed
                case "missing":
                    raise PeopleRefused("no_candidate", "no such candidate in this programme")
                case "not_your_group":
                    raise PeopleRefused(code, _DETAILS[code])
                case "stale":
                    raw, record = current, decode_candidate(current)
            if leader is not None and record.group != group:
                raise PeopleRefused("not_your_group", _DETAILS["not_your_group"])
            changed = change(record, int(now))
            if changed is None:
                return record
            new = msgspec.json.encode(changed)
        raise RuntimeError("the candidate's record keeps changing")

    async def guardian(
        self, programme: str, person: str, g: Guardian, acting: Acting, *,
        leader: str | None = None, group: str | None = None,
    ) -> CandidateRecord:  # fmt: skip
        """Record a legal guardian's consent (once; 409 if one is recorded already)."""

        if self._box is None:
            raise RuntimeError("recording a guardian needs the name box")
        k = await self.keys(programme)
        box, games = self._box, k.games
        raw_spec: Any = cache.spec(self.store, programme) or await self.client.hget(
            k.programmes, programme
        )
        until = None if not raw_spec else decode_programme(raw_spec).retention_until
        cutoff = None if until is None else retention_cutoff(until)

        def change(record: CandidateRecord, now: int) -> CandidateRecord:
            if cutoff is not None and now >= cutoff:  # a guardian's name would outlive the purge
                raise PeopleRefused("retention_over", "the programme's retention period is over: "
                                    "no guardian's consent can be recorded")  # fmt: skip
            if record.guardian is not None:
                raise PeopleRefused("guardian_recorded", "a guardian's consent is recorded already")
            given = guardian_record(g, acting.actor, today_utc(now), games=games, person=person,
                                    box=box)  # fmt: skip
            return msgspec.structs.replace(record, guardian=given)

        return await self._update(programme, person, change, acting, leader=leader, group=group)

    async def reuse(
        self, programme: str, person: str, version: str | None, acting: Acting
    ) -> CandidateRecord:
        """Give (``version``) or revoke (None: the right to object) consent to reuse."""

        def change(record: CandidateRecord, now: int) -> CandidateRecord | None:
            if version is None:
                return None if record.reuse is None else msgspec.structs.replace(record, reuse=None)
            if record.reuse is not None and record.reuse.version == version:
                return None
            return msgspec.structs.replace(record, reuse=ReuseRecord(version=version, at=now))

        return await self._update(programme, person, change, acting)

    async def reuse_consents(
        self, programme: str, acting: Acting
    ) -> AsyncIterator[ReuseConsentRow]:
        """The candidates that gave consent to reuse and did not object since (the export is
        an act of access: recorded, declaration checked, before it streams)."""
        k = await self.keys(programme)
        await access.read(self.store, k, k.candidates(programme), "", acting, programme=programme)
        async for person, raw in self.client.hscan_iter(k.candidates(programme), count=1000):
            record = decode_candidate(raw)
            if record.reuse is not None:
                yield ReuseConsentRow(person.decode(), record.reuse.version, record.reuse.at)

    # --- groups ---------------------------------------------------------------------------------

    async def invite(
        self, programme: str, invite: Invite, acting: Acting
    ) -> tuple[bool, GroupRecord]:
        """Create a group led by ``invite.leader``: (created, the group)."""
        k = await self.keys(programme)
        keys = [k.programmes, k.groups(programme), k.leaders(programme)]
        raw_code, value = await run(self.store, GROUP, k, keys,
                                    [programme, invite.id, invite.leader, acting.actor], acting,
                                    programme=programme)  # fmt: skip
        code: GroupCode = code_of(raw_code, GroupCode, "people_group")
        if code == "no_programme":
            raise PeopleRefused(code, f"no programme {programme!r}")
        if code in ("group_exists", "leader_busy"):
            raise PeopleRefused(code, _DETAILS[code])
        return code == "created", decode_group(value)

    async def mobility(
        self, programme: str, group: str, count: int, acting: Acting, leader: str | None = None
    ) -> GroupRecord:
        """Set the group's mobility needs (a count for the group)."""
        k = await self.keys(programme)
        raw_code, value = await run(
            self.store, MOBILITY, k, [k.groups(programme), k.leaders(programme)],
            [group, count, acting.actor, leader or ""], acting, programme=programme)  # fmt: skip
        code: MobilityCode = code_of(raw_code, MobilityCode, "people_mobility")
        if code == "no_group":
            raise PeopleRefused("unknown_group", "no such group in this programme")
        if code == "not_your_group":
            raise PeopleRefused(code, _DETAILS[code])
        return decode_group(value)

    # --- purge ----------------------------------------------------------------------------------

    async def purge_batch(
        self, programme: str, cursor: str, acting: Acting, count: int = PURGE_BATCH
    ) -> tuple[str, int]:
        """One batch of the purge: (next cursor, '0' when done; names erased). One round trip
        when this worker has seen the spec: the script checks the retention date it decided on
        ('stale': read the spec again)."""
        for _ in range(_STALE_RETRIES):
            raw_spec = cache.spec(self.store, programme)
            if raw_spec:
                k, spec, fresh = await self.keys(programme), decode_programme(raw_spec), False
            else:
                (k, spec), fresh = await self.programme(programme), True
            if spec.retention_until is None:
                if not fresh:
                    cache.remember_spec(self.store, programme, b"")
                    continue
                raise PeopleRefused("early", "the programme has no retention date")
            until = spec.retention_until
            keys = [k.programmes, k.candidates(programme), k.stats(programme)]
            args = [programme, until.isoformat(), retention_cutoff(until), cursor, count]
            raw_code, after, purged = await run(self.store, PURGE, k, keys, args, acting,
                                                programme=programme)  # fmt: skip
            code: PurgeCode = code_of(raw_code, PurgeCode, "people_purge")
            match code:
                case "ok":
                    return after.decode(), int(purged)
                case "no_programme":
                    raise PeopleRefused(code, f"no programme {programme!r}")
                case "early":
                    end = model.paris_midnight(until + timedelta(days=1)).isoformat()
                    raise PeopleRefused(code, f"the programme keeps its data until {until} "
                                              f"(purge from {end})")  # fmt: skip
                case "stale":
                    cache.remember_spec(self.store, programme, b"")
                    continue
        raise RuntimeError("the programme's retention date keeps changing")

    async def purge(
        self, programme: str, acting: Acting, cursor: str = "0", count: int = PURGE_BATCH
    ) -> int:
        """Erase every name of the programme's candidates (after its retention date)."""
        total, batch = 0, acting  # the first batch writes the act's record; the later ones none
        while True:
            cursor, purged = await self.purge_batch(programme, cursor, batch, count)
            batch = acting.then()
            total += purged
            if cursor == "0":
                return total
