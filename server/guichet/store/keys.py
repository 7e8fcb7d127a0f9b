"""Every Redis key name Guichet uses, in one place, with its hash tag chosen on purpose.

Redis Cluster hashes only the part of a key inside the first ``{…}``; keys that one Lua script
touches must share that tag so they live in one slot. Rules used here:

- a rate-limit bucket is its own tag (``{rl:<scope>:<subject>}``): buckets spread over shards;
- everything of one waiting room is tagged ``{room:<id>}``: its config, counters, tickets,
  sessions, checkpoints, and its join rate-limit buckets, so that join, tick and admit are each
  one script on one shard (one room's load fits one shard: see docs/architecture.md);
- later components add their own families here (``{sale:<id>}``, …), each tagged by the
  entity whose invariant a script protects.

Components never build key strings themselves; Lua scripts never build key names.
"""

from __future__ import annotations

import hashlib
import zlib

PREFIX = "g:"  # namespace, so Guichet can share a database with other tenants


def _checked(part: str) -> str:
    if not part or any(c in part for c in "{}\r\n "):
        raise ValueError(f"invalid key part {part!r}")
    return part


def tag_of(key: str) -> str:
    """The hash tag Redis Cluster would use for ``key`` (the whole key when there is none)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def rate_limit(scope: str, subject: str) -> str:
    """GCRA state (theoretical arrival time, µs) of one limited subject, e.g. an IP or account."""
    return f"{PREFIX}{{rl:{_checked(scope)}:{_checked(subject)}}}"


def subject_digest(subject: str) -> str:
    """A short, key-safe digest of an account id or IP (any characters may appear in those)."""
    return hashlib.blake2b(subject.encode(), digest_size=12).hexdigest()


AUDIT_TAG = "audit"  # the chain of acts whose keys have no tag of their own (key rotations, …)
#: Signed anchors: every chain's head at one instant (stream; its own slot, docs/architecture.md).
AUDIT_ANCHORS = f"{PREFIX}{{{AUDIT_TAG}}}:anchors"


def audit_chain(tag: str) -> str:
    """The audit chain (stream) of acts on keys tagged ``{tag}``: in their slot, so the script
    that performs an act appends its record (``audit/lua_include/audit.lua``)."""
    return f"{PREFIX}{{{_checked(tag)}}}:audit"


ROOMS_INDEX = f"{PREFIX}rooms"  # set of room ids (own slot; written after the room's cfg)


class RoomKeys:
    """The keys of one waiting room, all in the slot of ``{room:<id>}`` (built once)."""

    __slots__ = (
        "_prefix",
        "active",
        "admitted_numbers",
        "calls",
        "cfg",
        "draw_log",
        "draw_numbers",
        "draw_positions",
        "ended",
        "room",
        "sessions",
        "state",
        "tickets",
    )  # fmt: skip

    def __init__(self, room: str) -> None:
        self.room = room
        self._prefix = f"{PREFIX}{{room:{_checked(room)}}}:"
        self.cfg = self._prefix + "cfg"
        self.state = self._prefix + "state"
        self.tickets = self._prefix + "tickets"
        self.active = self._prefix + "active"
        self.sessions = self._prefix + "sessions"
        self.calls = self._prefix + "calls"
        self.admitted_numbers = self._prefix + "admitted"
        self.ended = self._prefix + "ended"  # stream: sessions ended (left, reaped)
        # random mode's draw (tick.lua, lottery.py): swapped positions both ways, batch log
        self.draw_numbers = self._prefix + "draw:num"  # position -> number
        self.draw_positions = self._prefix + "draw:pos"  # number -> position
        self.draw_log = self._prefix + "draw:log"

    def join_limit(self, kind: str, subject: str) -> str:
        return f"{self._prefix}rl:{_checked(kind)}:{subject_digest(subject)}"

    def challenge_used(self, nonce: str) -> str:
        """A spent proof-of-work challenge, by its nonce (base64url: room/challenge.py checks
        its shape; '' when the join carries none), expiring with the challenge."""
        return f"{self._prefix}pow:{nonce}"

    def all(self) -> list[str]:
        """Every fixed key of the room (rate-limit buckets expire on their own)."""
        return [self.cfg, self.state, self.tickets, self.active, self.sessions, self.calls,
                self.admitted_numbers, self.ended, self.draw_numbers, self.draw_positions,
                self.draw_log]  # fmt: skip


DRAWS_INDEX = f"{PREFIX}draws"  # set of draw ids (own slot; written after the draw's cfg)
SALES_INDEX = f"{PREFIX}sales"  # set of sale ids (own slot; written after the sale's cfg)

#: Entries of a draw are spread over this many hashes (by CRC-32 of the account id) so that
#: the run can scan them from several processes at once. Changing it orphans stored entries.
ENTRY_BUCKETS = 64


def entry_bucket(account: str) -> int:
    """Which of a draw's entry hashes holds ``account``."""
    return zlib.crc32(account.encode()) % ENTRY_BUCKETS


class DrawKeys:
    """The keys of one draw, all in the slot of ``{draw:<id>}``: its config (spec, commitment,
    sealed seed, run state, transcript), its entries (account -> "<stratum>:<registered µs>",
    in :data:`ENTRY_BUCKETS` hashes), counts by stratum, and the stored ranking (chunk number
    -> newline-terminated ids). Registration is metered by the waiting room, so one shard per
    draw carries it (docs/architecture.md)."""

    __slots__ = ("_prefix", "cfg", "counts", "draw", "ranking")

    def __init__(self, draw: str) -> None:
        self._prefix = f"{PREFIX}{{draw:{_checked(draw)}}}:"
        self.draw = draw
        self.cfg = self._prefix + "cfg"
        self.counts = self._prefix + "counts"
        self.ranking = self._prefix + "ranking"

    def entries(self, bucket: int) -> str:
        return f"{self._prefix}entries:{bucket:02d}"

    def entries_of(self, account: str) -> str:
        return self.entries(entry_bucket(account))

    def members(self, stratum: str) -> str:
        """Set of the account ids ops listed as members of a restricted stratum (in the draw's
        slot, so that register.lua checks membership in the same atomic step)."""
        return f"{self._prefix}members:{_checked(stratum)}"

    def members_loading(self, stratum: str) -> str:
        """Where a new member list is built before it replaces the old one in one step."""
        return f"{self._prefix}members-loading:{_checked(stratum)}"

    def all(self) -> list[str]:
        buckets = [self.entries(b) for b in range(ENTRY_BUCKETS)]
        return [self.cfg, self.counts, self.ranking, *buckets]


class SaleKeys:
    """Keys of one sale, all in the slot of ``{sale:<id>}``. The draw side of it: purchase
    windows per phase (account -> "<start µs>:<end µs>:<draw>:<wave>", one per account, sale
    and phase: a packs-phase winner can win the singles draw too), each
    draw's wave state, and the outbox stream of window notices. They share the sale's slot so
    that the shop's hold script can check the window in the same atomic step as the stock, and
    so that releasing a wave (window, wave state and notice together) is one script.

    The shop side: ``cfg`` (phase and rules), per item (``"<session>:<category>"``) the
    ``loaded``, ``stock`` (available), ``held`` and ``sold`` counts (available + held + sold =
    loaded), ``usage`` (per account tag: tickets, packs, tickets per session, held and sold
    together), ``holds`` (hold id -> JSON record), ``expiries`` (zset of held holds by expiry),
    ``limited`` (sessions with the lower per-session limit), ``sessions`` (catalogue entries),
    and one idempotency key per account and client key.

    E-tickets: ``bought`` (per account, the set of its confirmed hold ids: its tickets derive
    from those records) and ``scans`` (ticket id -> "<µs> <gate>", the first accepted scan)."""

    __slots__ = ("_prefix", "cfg", "expiries", "held", "holds", "limited", "loaded", "outbox",
                 "sale", "scans", "sessions", "sold", "stock", "usage")  # fmt: skip

    def __init__(self, sale: str) -> None:
        self._prefix = f"{PREFIX}{{sale:{_checked(sale)}}}:"
        self.sale = sale
        self.outbox = self._prefix + "outbox"
        self.cfg = self._prefix + "cfg"
        self.loaded = self._prefix + "loaded"
        self.stock = self._prefix + "stock"
        self.held = self._prefix + "held"
        self.sold = self._prefix + "sold"
        self.usage = self._prefix + "usage"
        self.holds = self._prefix + "holds"
        self.expiries = self._prefix + "expiries"
        self.limited = self._prefix + "limited"
        self.sessions = self._prefix + "sessions"
        self.scans = self._prefix + "scans"

    def bought(self, account: str) -> str:
        """The set of an account's confirmed hold ids (its e-tickets derive from them)."""
        return f"{self._prefix}bought:{subject_digest(account)}"

    def idempotency(self, account: str, key: str) -> str:
        """The answer kept for one account's ``Idempotency-Key``."""
        return f"{self._prefix}idem:{subject_digest(account)}:{subject_digest(key)}"

    def windows(self, phase: str) -> str:
        """Purchase windows of one phase of the sale (``packs``, ``singles``)."""
        return f"{self._prefix}windows:{_checked(phase)}"

    def waves(self, draw: str) -> str:
        """Hash of one draw's wave state: cursor (next rank to assign), waves, per-wave stats."""
        return f"{self._prefix}waves:{_checked(draw)}"

    @property
    def purchases(self) -> str:
        """Hash of what confirms recorded per wave of the sale's draws: ``<draw>:<wave>:b``
        (buyers: accounts whose first purchase of the phase it was) and ``<draw>:<wave>:t``
        (tickets). Per sale, not per draw, so confirm.lua needs no draw-named key."""
        return self._prefix + "purchases"


PROGRAMMES_INDEX = f"{PREFIX}taj:programmes"  # hash programme id -> games (own slot; after)


class ProgrammeKeys:
    """Keys of the State programme for one games, all in the slot of ``{taj:<games>}``.

    One slot per games on purpose: the invariant (per session x category, pool +
    allocated-unassigned + assigned + used = loaded) spans the pool and every programme, and
    "no double benefit" spans every programme of the games, so each act is one script on one
    shard. The programme's rate is operators' and beneficiaries' acts, not a public rush: one
    shard carries it (docs/architecture.md).

    Counts per item (field ``"<session>:<category>"``): ``loaded``, ``pool`` (central, not yet
    allocated), ``alloc:<P>`` (allocated to programme P, not yet assigned), ``assigned`` and
    ``used`` (all programmes). ``sessions``: session id -> JSON (date, games, name). ``programmes``:
    programme id -> JSON spec. ``stats:<P>``: per-programme counters (allocated, assigned,
    withdrawn, reassigned, returned, reclaimed, …). ``candidates:<P>``: pseudonym -> JSON
    record (no plain personal data: the name only AES-GCM encrypted). ``benefit``: pseudonym
    -> programme holding its ticket (at most one programme per games, seed §1).
    ``groups:<P>``: group id -> JSON (leader account, mobility needs count); ``leaders:<P>``:
    leader account -> group id. ``tickets:<P>``: ticket id -> JSON record. ``lottery:<P>:<L>``:
    one lottery's state; ``ranking:<P>:<L>``: its ranked pseudonyms (list). ``exceptions:<P>``:
    the exceptions register (stream). ``outbox``: notices (stream). ``reclaims``: reclaim
    progress per programme.
    """

    __slots__ = ("_prefix", "assigned", "benefit", "calendar", "declarations", "games", "loaded",
                 "outbox", "pool", "programmes", "reclaims", "sessions", "used")  # fmt: skip

    def __init__(self, games: str) -> None:
        self.games = games
        self._prefix = f"{PREFIX}{{taj:{_checked(games)}}}:"
        self.loaded = self._prefix + "loaded"
        self.pool = self._prefix + "pool"
        self.assigned = self._prefix + "assigned"
        self.used = self._prefix + "used"
        self.sessions = self._prefix + "sessions"
        #: ``first``: the day of the games' first session (written with the pool): a person of
        #: age on it is of age at every session, and their majority day is not kept.
        self.calendar = self._prefix + "calendar"
        self.programmes = self._prefix + "programmes"
        self.benefit = self._prefix + "benefit"
        self.outbox = self._prefix + "outbox"
        self.reclaims = self._prefix + "reclaims"
        #: Conflict-of-interest declarations (AFA): acting subject -> JSON {at, until, conflicts}.
        self.declarations = self._prefix + "declarations"

    def alloc(self, programme: str) -> str:
        return f"{self._prefix}alloc:{_checked(programme)}"

    def stats(self, programme: str) -> str:
        return f"{self._prefix}stats:{_checked(programme)}"

    def candidates(self, programme: str) -> str:
        return f"{self._prefix}candidates:{_checked(programme)}"

    def groups(self, programme: str) -> str:
        return f"{self._prefix}groups:{_checked(programme)}"

    def leaders(self, programme: str) -> str:
        return f"{self._prefix}leaders:{_checked(programme)}"

    def tickets(self, programme: str) -> str:
        return f"{self._prefix}tickets:{_checked(programme)}"

    def exceptions(self, programme: str) -> str:
        return f"{self._prefix}exceptions:{_checked(programme)}"

    def lottery(self, programme: str, lottery: str) -> str:
        return f"{self._prefix}lottery:{_checked(programme)}:{_checked(lottery)}"

    def ranking(self, programme: str, lottery: str) -> str:
        return f"{self._prefix}ranking:{_checked(programme)}:{_checked(lottery)}"

    def journal(self) -> str:
        """The central acts of this games (stream: pool load, programme put, allocation,
        reclaim; each with its actor and Redis time)."""
        return self._prefix + "journal"
