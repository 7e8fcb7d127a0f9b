"""Settings: one frozen tree of msgspec Structs, loaded from TOML plus ``GUICHET_*`` overrides.

Every value is documented here; a bad value stops start-up with a message naming the key and
what is allowed (:class:`ConfigError`). Secrets are marked ``Secret`` so ``config show`` masks
them.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints
from urllib.parse import unquote, urlsplit

import msgspec
from msgspec import Meta

from guichet.draw.model import DrawDefinition
from guichet.room.model import RoomDefinition

ENV_PREFIX = "GUICHET_"
DEFAULT_CONFIG_FILE = "guichet.toml"

#: Marks a field whose value must never be printed or logged.
SECRET = {"secret": True}

Port = Annotated[int, Meta(ge=0, le=65535)]
PositiveInt = Annotated[int, Meta(ge=1)]
PositiveFloat = Annotated[float, Meta(gt=0)]


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the key and what is allowed."""


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerConfig(_Section, frozen=True):
    """HTTP front: where to listen, how many processes, request limits."""

    host: str = "127.0.0.1"
    port: Port = 8080
    workers: Annotated[int, Meta(ge=1, le=256)] = 1
    max_body_bytes: Annotated[int, Meta(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    shutdown_timeout_s: PositiveFloat = 10.0
    backlog: PositiveInt = 2048
    #: A request head (line and headers) must arrive whole within this, once its first byte
    #: came; else the connection is closed (slowloris).
    header_timeout_s: Annotated[float, Meta(gt=0, le=300)] = 10.0
    #: A request body must arrive whole within this once the handler reads it (408 beyond).
    body_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 30.0
    #: An idle keep-alive connection (or one that sends nothing) is closed after this.
    keepalive_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 15.0
    #: Request line and header block limits (431 beyond): total bytes, one line, count.
    max_header_bytes: Annotated[int, Meta(ge=1024, le=1024 * 1024)] = 32 * 1024
    max_header_line_bytes: Annotated[int, Meta(ge=256, le=65536)] = 8190
    max_headers: Annotated[int, Meta(ge=8, le=1000)] = 64
    #: Serve ``GET /v1/rooms/{room}/status`` matched on its raw path, before aiohttp's router
    #: (same middleware, answers and metrics; off: through the router like every route).
    fast_status: bool = True
    #: Once a worker has started, move every object it holds into the collector's permanent
    #: generation (``gc.freeze``) and collect the young generation every this many new
    #: objects (Python's default, 700, runs it thousands of times a second under load);
    #: 0 leaves the collector as Python sets it.
    gc_gen0_threshold: Annotated[int, Meta(ge=0, le=10_000_000)] = 50_000


class RedisConfig(_Section, frozen=True):
    """Where state lives. No ``url`` and no ``cluster_seeds``: a private embedded Valkey."""

    url: Annotated[str | None, Meta(extra=SECRET)] = None
    #: ``host:port``, or ``[user:]password@host:port`` for a Cluster that wants AUTH (secret).
    cluster_seeds: Annotated[tuple[str, ...], Meta(extra=SECRET)] = ()
    data_dir: str = ".guichet/data"
    embedded_binary: str | None = None
    max_connections: Annotated[int, Meta(ge=1, le=10_000)] = 64
    socket_timeout_s: PositiveFloat = 5.0
    connect_timeout_s: PositiveFloat = 2.0
    health_timeout_s: PositiveFloat = 1.0
    #: Scripts over pipelined connections of our own ("multiplex") or redis-py's pool ("pool").
    data_plane: Literal["multiplex", "pool"] = "multiplex"
    #: Connections per Valkey node of the multiplexed data plane (one makes the biggest batches).
    plane_connections: Annotated[int, Meta(ge=1, le=64)] = 1
    #: false: `guichet serve` refuses to start the embedded Valkey (exit 2) when neither
    #: ``url`` nor ``cluster_seeds`` is set, from any source. The container image sets it: its
    #: data would die with the container, and each replica would have a Valkey of its own.
    allow_embedded: bool = True

    def __post_init__(self) -> None:
        if self.url is not None and self.cluster_seeds:
            raise ValueError("set either `url` or `cluster_seeds`, not both")
        if self.url is not None:
            scheme = urlsplit(self.url).scheme
            if scheme not in ("redis", "rediss", "unix"):
                raise ValueError(
                    f"`url` scheme {scheme!r} is not allowed: use redis://, rediss:// or unix://"
                )
        for seed in self.cluster_seeds:
            host, sep, port = seed.rpartition("@")[2].rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(
                    f"`cluster_seeds` entry {mask_seed(seed)!r} must be host:port "
                    "(or [user:]password@host:port)"
                )

    @property
    def embedded(self) -> bool:
        return self.url is None and not self.cluster_seeds

    @property
    def cluster_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every seed, credentials left out."""
        nodes = []
        for seed in self.cluster_seeds:
            host, _, port = seed.rpartition("@")[2].rpartition(":")
            nodes.append((host, int(port)))
        return nodes

    @property
    def cluster_auth(self) -> dict[str, str]:
        """``username``/``password`` keyword arguments from the first seed that carries them."""
        for seed in self.cluster_seeds:
            userinfo, at, _ = seed.rpartition("@")
            if at:
                user, colon, password = userinfo.partition(":")
                if not colon:
                    return {"password": unquote(user)}
                return {"password": unquote(password)} | (
                    {"username": unquote(user)} if user else {}
                )
        return {}


class SecurityConfig(_Section, frozen=True):
    """Bearer tokens: who issues them and which keys verify them.

    Account tokens come from the ticketing front-end's identity provider; admin tokens carry
    ``scope``. ``dev_issuer`` trusts a local Ed25519 key (created on first use) so that
    ``guichet token`` can mint tokens for the demo, tests and load tests; turn it off in
    production and list the provider's keys in ``public_keys``/``jwks_file``, or fetch them
    from ``jwks_url``.
    """

    issuer: str = "guichet-dev"
    audience: str = "guichet"
    admin_audience: str = "guichet-admin"
    algorithms: tuple[Literal["EdDSA", "ES256", "RS256", "PS256"], ...] = ("EdDSA",)
    public_keys: tuple[str, ...] = ()
    jwks_file: str | None = None
    #: The identity provider's JWKS, fetched by each worker at start-up, every
    #: ``jwks_max_age_s`` (or the answer's Cache-Control max-age, within the bounds below) and
    #: on a token with an unknown ``kid``; merged with the keys above. https only (http for a
    #: loopback host, for tests). /readyz answers 503 until a first fetch succeeds.
    jwks_url: str | None = None
    #: A CA bundle (PEM) that verifies the JWKS server's certificate; unset: the system's CAs.
    jwks_ca_file: str | None = None
    #: Never fetch the JWKS more often than this, unknown ``kid`` floods included.
    jwks_min_refresh_s: Annotated[float, Meta(gt=0, le=86400)] = 30.0
    #: Fetch again at the latest after this (a shorter Cache-Control max-age is honoured).
    jwks_max_age_s: Annotated[float, Meta(gt=0, le=7 * 86400)] = 600.0
    #: A fetch (connect, TLS, answer) must finish within this.
    jwks_timeout_s: Annotated[float, Meta(gt=0, le=120)] = 5.0
    dev_issuer: bool = True
    dev_issuer_key_file: str = ".guichet/dev-issuer.pem"
    leeway_s: Annotated[float, Meta(ge=0, le=300)] = 30.0
    max_token_ttl_s: PositiveInt = 24 * 3600
    #: Verified tokens and queue tickets remembered per worker (a repeat costs a dict lookup);
    #: 0 turns the cache off.
    verified_cache_size: Annotated[int, Meta(ge=0, le=10_000_000)] = 200_000
    #: The account-token claim listing the account's groups (e.g. ``["club"]``): a draw's
    #: restricted stratum of the same name admits the account (docs/architecture.md).
    groups_claim: Annotated[str, Meta(min_length=1, max_length=64)] = "groups"
    #: The admin-token claim listing the State programmes an operator acts for (a list of
    #: programme ids, or one space-separated string): the operator's binding.
    programmes_claim: Annotated[str, Meta(min_length=1, max_length=64)] = "programmes"
    #: A secret shared with the front-end (>= 32 bytes, UTF-8) that also signs account tokens
    #: with HS256; admin tokens never. Unset (default): HS256 tokens are refused. Whoever holds
    #: it can mint account tokens (docs/architecture.md, "Token verification").
    account_hs256_secret: Annotated[str | None, Meta(extra=SECRET)] = None
    #: The same secret read from a file (trailing newline ignored) when the key above is unset.
    account_hs256_secret_file: str | None = None

    def __post_init__(self) -> None:
        if not self.algorithms:
            raise ValueError("`algorithms` must not be empty")
        if self.account_hs256_secret is not None and len(self.account_hs256_secret.encode()) < 32:
            raise ValueError("`account_hs256_secret` must be at least 32 bytes")
        if self.jwks_url is not None:
            _check_jwks_url(self.jwks_url)
        elif self.jwks_ca_file is not None:
            raise ValueError("`jwks_ca_file` is set but `jwks_url` is not")
        if self.jwks_min_refresh_s > self.jwks_max_age_s:
            raise ValueError("`jwks_min_refresh_s` must not exceed `jwks_max_age_s`")


def _check_jwks_url(url: str) -> None:
    """https, or http to a loopback host (a local JWKS server in tests)."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError("`jwks_url` must be an absolute https:// URL")
    if parts.scheme == "https":
        return
    if parts.scheme == "http":
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return
        raise ValueError("`jwks_url` may use http:// only for a loopback host; use https://")
    raise ValueError(f"`jwks_url` scheme {parts.scheme!r} is not allowed: use https://")


class RoomsConfig(_Section, frozen=True):
    """Waiting rooms: queue tickets, admission tokens, pacing, join limits, rooms to create.

    ``define`` lists rooms created at start-up when they do not exist yet (``[[rooms.define]]``
    tables with an ``id`` and the fields of a room spec); live changes made through the admin
    API are kept across restarts.
    """

    ticket_secret: Annotated[str | None, Meta(extra=SECRET)] = None  # >= 32 chars
    ticket_secret_file: str = ".guichet/ticket-secret"  # noqa: S105 (a path, not a secret)
    signing_key_dir: str = ".guichet/admission-keys"
    admission_issuer: str = "guichet"
    tick_interval_s: Annotated[float, Meta(ge=0.02, le=1.0)] = 0.2
    ready_grace_s: Annotated[int, Meta(ge=10, le=86_400)] = 300
    rate_window_s: Annotated[int, Meta(ge=1, le=600)] = 10
    reap_batch: Annotated[int, Meta(ge=1, le=100_000)] = 1000
    join_per_ip_per_min: PositiveInt = 60
    join_ip_burst: PositiveInt = 30
    join_per_account_per_min: PositiveInt = 12
    join_account_burst: PositiveInt = 6
    #: The ticket cookie is Secure; false only where the service is served over plain HTTP
    #: (development). Browsers take Secure cookies from http://localhost and 127.0.0.1 anyway.
    cookie_secure: bool = True
    #: Open SSE streams (room and shop together) per worker, per client address, per ticket.
    sse_max_clients: Annotated[int, Meta(ge=0, le=1_000_000)] = 20_000
    sse_max_per_address: Annotated[int, Meta(ge=1, le=1_000_000)] = 16
    sse_max_per_ticket: Annotated[int, Meta(ge=1, le=1000)] = 2
    #: Header carrying the client address when behind a trusted proxy (its last entry is
    #: used, as appended by that proxy), e.g. "X-Forwarded-For"; unset: the peer address.
    client_ip_header: str | None = None
    #: Peers (CIDRs) whose ``client_ip_header`` is believed; others are known by their address.
    trusted_proxies: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    define: tuple[RoomDefinition, ...] = ()
    #: How long a proof-of-work challenge (rooms with ``challenge_bits`` > 0) may be solved, s.
    challenge_ttl_s: Annotated[int, Meta(ge=10, le=3600)] = 120

    def __post_init__(self) -> None:
        if self.ticket_secret is not None and len(self.ticket_secret) < 32:
            raise ValueError("`ticket_secret` must be at least 32 characters")
        ids = [room.id for room in self.define]
        if len(ids) != len(set(ids)):
            raise ValueError("`define` lists a room id twice")
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                msg = f"`trusted_proxies` entry {cidr!r} is not an address or CIDR"
                raise ValueError(msg) from None


class DrawsConfig(_Section, frozen=True):
    """Draws: the key sealing committed seeds, run parallelism, draws to create at start-up.

    ``seal_key`` (32 bytes, hex or base64) encrypts each draw's secret seed between commit
    and run; without it a local file is made on first use (``seal_key_file``, mode 0600),
    which suits one ops host. ``define`` lists draws created at start-up when they do not
    exist yet (``[[draws.define]]`` tables with an ``id`` and the fields of a draw spec).
    """

    seal_key: Annotated[str | None, Meta(extra=SECRET)] = None
    seal_key_file: str = ".guichet/draw-seal-key"
    #: Ed25519 keys signing transcripts (``<created>.pem``, newest signs; made on first use).
    #: Kept apart from the admission keys: a transcript must verify for good, so every key
    #: that signed one is published at ``/.well-known/draw-jwks.json`` for good.
    signing_key_dir: str = ".guichet/draw-signing-keys"
    run_processes: Annotated[int, Meta(ge=1, le=64)] = 2
    scan_batch: Annotated[int, Meta(ge=100, le=100_000)] = 5000
    #: How often each worker refreshes the draw and outbox gauges from Redis.
    monitor_interval_s: Annotated[float, Meta(ge=0.5, le=300)] = 5.0
    #: ``outbox read`` takes over notices read but not acknowledged for this long (their
    #: reader is taken for dead): longer than sending one batch of mails ever takes.
    outbox_claim_idle_s: Annotated[float, Meta(ge=0.1, le=86_400)] = 600.0
    define: tuple[DrawDefinition, ...] = ()

    def __post_init__(self) -> None:
        ids = [draw.id for draw in self.define]
        if len(ids) != len(set(ids)):
            raise ValueError("`define` lists a draw id twice")


class ShopConfig(_Section, frozen=True):
    """The shop: how fresh availability is, how expired holds are reaped, confirm durability."""

    #: Each worker re-reads stock (availability, SSE, metering) and reaps expired holds this
    #: often.
    refresh_interval_s: Annotated[float, Meta(ge=0.05, le=10)] = 0.5
    expire_batch: Annotated[int, Meta(ge=1, le=100_000)] = 1000
    #: A confirm waits this long for the AOF fsync (WAITAOF) before answering 503.
    confirm_timeout_ms: Annotated[int, Meta(ge=10, le=60_000)] = 2000


class EticketsConfig(_Section, frozen=True):
    """E-tickets: the keyring that signs them (apart from the admission keys) and how long a
    ticket can be scanned.

    A ticket's payload is a compact JWS (EdDSA) whose key is published at
    ``/.well-known/jwks.json``; a retired key stays published ``valid_days`` after its
    successor appeared, and a payload expires ``valid_days`` after its purchase, so every
    payload that can still be scanned has its key published (our design).
    """

    signing_key_dir: str = ".guichet/eticket-keys"
    issuer: str = "guichet"
    #: The payload's ``aud``: an offline verifier checks it, so that an admission token (the
    #: same JWKS) is never taken for a ticket.
    audience: str = "guichet-gate"
    valid_days: Annotated[int, Meta(ge=1, le=3650)] = 400


class ProgrammeConfig(_Section, frozen=True):
    """The State programme "Tous aux Jeux": the keys that keep beneficiaries' data minimised.

    ``pseudonym_secret`` (>= 32 bytes, hex or base64) keys the HMAC-SHA-256 that turns a
    person's normalised identity into the pseudonym stored, counted and de-duplicated (the
    same person gives the same pseudonym in every programme: every worker and ops host must
    share it). ``name_key`` (32 bytes, hex or base64) encrypts (AES-256-GCM) the name printed
    on a nominative ticket. Without them, local files are made on first use (mode 0600),
    which suits one host only.
    """

    pseudonym_secret: Annotated[str | None, Meta(extra=SECRET)] = None
    pseudonym_secret_file: str = ".guichet/programme-pseudonym-secret"  # noqa: S105 (a path)
    name_key: Annotated[str | None, Meta(extra=SECRET)] = None
    name_key_file: str = ".guichet/programme-name-key"
    #: How often each worker refreshes the programme's gauges from Redis.
    monitor_interval_s: Annotated[float, Meta(ge=0.5, le=300)] = 10.0
    #: How long an agent's conflict-of-interest declaration holds from its filing (AFA; 0:
    #: it expires at once, the agent cannot act).
    declaration_valid_days: Annotated[int, Meta(ge=0, le=3660)] = 365


class AuditConfig(_Section, frozen=True):
    """The audit log (docs/architecture.md, "Audit log"): the key of request digests and the
    signed anchors that tie every chain's head together.

    ``digest_secret`` (>= 32 bytes, hex or base64) keys the HMAC-SHA-256 of each act's request
    recorded in the log (never the request itself: it may hold personal data); without it a
    local file is made on first use (mode 0600). Anchors are signed with Ed25519 keys kept in
    ``signing_key_dir`` (every key kept: an anchor must verify for good).
    """

    digest_secret: Annotated[str | None, Meta(extra=SECRET)] = None
    digest_secret_file: str = ".guichet/audit-digest-secret"  # noqa: S105 (a path, not a secret)
    signing_key_dir: str = ".guichet/audit-signing-keys"
    #: How often a signed anchor of every chain's head is published (0 = never).
    anchor_interval_s: Annotated[float, Meta(ge=0, le=86400)] = 60.0


class LoggingConfig(_Section, frozen=True):
    """Structured JSON logs on stderr."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    access_log: bool = True


class Settings(_Section, frozen=True):
    """The whole configuration tree."""

    server: ServerConfig = ServerConfig()
    redis: RedisConfig = RedisConfig()
    security: SecurityConfig = SecurityConfig()
    rooms: RoomsConfig = RoomsConfig()
    draws: DrawsConfig = DrawsConfig()
    shop: ShopConfig = ShopConfig()
    etickets: EticketsConfig = EticketsConfig()
    programme: ProgrammeConfig = ProgrammeConfig()
    audit: AuditConfig = AuditConfig()
    logging: LoggingConfig = LoggingConfig()


def _field_types(section: type[msgspec.Struct]) -> dict[str, Any]:
    info = msgspec.inspect.type_info(section)
    assert isinstance(info, msgspec.inspect.StructType)
    return {f.name: f.type for f in info.fields}


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``GUICHET_SERVER_PORT=9000`` → ``{"server": {"port": "9000"}}`` (converted later)."""
    sections = _field_types(Settings)
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name.startswith(ENV_PREFIX + "TEST_"):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section not in sections or not key:
            raise ConfigError(
                f"environment variable {name}: unknown section {section!r}; "
                f"allowed: {', '.join(sorted(sections))}"
            )
        section_type = sections[section]
        assert isinstance(section_type, msgspec.inspect.StructType)
        keys = {f.name: f.type for f in section_type.fields}
        if key not in keys:
            raise ConfigError(
                f"environment variable {name}: unknown key {section}.{key}; "
                f"allowed: {', '.join(sorted(keys))}"
            )
        value: Any = raw
        kind = keys[key]
        if isinstance(kind, msgspec.inspect.Metadata):  # Annotated[..., Meta(...)]
            kind = kind.type
        if isinstance(kind, msgspec.inspect.ListType | msgspec.inspect.VarTupleType):
            try:
                value = msgspec.json.decode(raw) if raw.startswith("[") else _split_list(raw)
            except msgspec.DecodeError as exc:
                raise ConfigError(f"environment variable {name}: not a JSON list ({exc})") from exc
        elif raw == "" and _is_optional(keys[key]):
            value = None
        annotation = get_type_hints(section_type.cls, include_extras=True)[key]
        try:
            msgspec.convert(value, annotation, strict=False)
        except msgspec.ValidationError as exc:  # checked alone, to name the variable
            detail = str(exc).rpartition(" - at `")[0] or str(exc)
            raise ConfigError(
                f"{name} ({section}.{key}): {_plain(detail, annotation)}, got {raw!r}"
            ) from None
        out.setdefault(section, {})[key] = value
    return out


_TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false",
               "str": "a string", "array": "a list"}  # fmt: skip


def _plain(detail: str, annotation: Any) -> str:
    """msgspec's ``Expected `int` >= 1`` as ``expected an integer >= 1``; the allowed values of
    a Literal listed."""
    allowed = _literal_values(annotation)
    if allowed:
        return f"expected one of {', '.join(allowed)}"
    found = re.fullmatch(r"Expected `([^`]+)`(.*?)(?:, got `[^`]+`)?", detail)
    if not found:
        return detail[:1].lower() + detail[1:]
    kind, bound = found.groups()
    optional = kind.endswith(" | null")
    kind = kind.removesuffix(" | null")
    text = f"expected {_TYPE_NAMES.get(kind, f'`{kind}`')}{bound}"
    return text + (" (empty: unset)" if optional else "")


def _literal_values(annotation: Any) -> list[str]:
    """The allowed values of a Literal anywhere in ``annotation`` (``tuple[Literal[…], ...]``)."""
    if get_origin(annotation) is Literal:
        return [str(v) for v in get_args(annotation)]
    for arg in get_args(annotation):
        if values := _literal_values(arg):
            return values
    return []


def _annotation_at(path: str) -> Any:
    """The annotation of the setting at ``path`` (``logging.level``, ``rooms.define[0].mode``),
    or None."""
    annotation: Any = Settings
    for part in re.sub(r"\[\d+\]", "", path).split("."):
        while not (isinstance(annotation, type) and issubclass(annotation, msgspec.Struct)):
            structs = [a for a in get_args(annotation) if _struct_inside(a)]
            if not structs:
                return None
            annotation = structs[0]
        annotation = get_type_hints(annotation, include_extras=True).get(part)
        if annotation is None:
            return None
    return annotation


def _struct_inside(annotation: Any) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, msgspec.Struct)
    return any(_struct_inside(a) for a in get_args(annotation))


def _split_list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def _is_optional(t: msgspec.inspect.Type) -> bool:
    return isinstance(t, msgspec.inspect.UnionType) and any(
        isinstance(x, msgspec.inspect.NoneType) for x in t.types
    )


def _explain(exc: msgspec.ValidationError, origin: str) -> ConfigError:
    """Turn ``Expected `int` >= 0 - at `$.server.port``` into ``server.port: Expected …``."""
    message = str(exc)
    detail, sep, path = message.rpartition(" - at `")
    if not sep:
        return ConfigError(f"{origin}: {message}")
    key = path.rstrip("`").removeprefix("$").lstrip(".") or "(top level)"
    allowed = _literal_values(_annotation_at(key)) if detail.startswith("Invalid enum") else []
    if allowed:
        detail += f"; allowed: {', '.join(allowed)}"
    return ConfigError(f"{origin}: {key}: {detail}")


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Load the effective settings: defaults < TOML file < environment < explicit overrides.

    ``path=None`` reads ``guichet.toml`` from the working directory when present.
    """
    environ = os.environ if environ is None else environ
    data: dict[str, dict[str, Any]] = {}
    origin = "defaults"
    file = Path(path) if path is not None else Path(DEFAULT_CONFIG_FILE)
    if path is not None or file.exists():
        origin = str(file)
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {file} not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file}: invalid TOML ({exc})") from exc
        for section, values in raw.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{file}: {section}: expected a [{section}] table")
            data[section] = dict(values)
    env = _env_overrides(environ)
    for section, values in env.items():
        data.setdefault(section, {}).update(values)
    if env:
        origin += " + environment"
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    try:
        # strict=False lets "9000" from the environment become an int; TOML is already typed.
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise _explain(exc, origin) from exc


#: Query parameters whose value is masked: any name containing one of these (``password``,
#: ``ssl_password``, ``auth_token``, …).
_SECRET_QUERY_WORDS = ("pass", "secret", "token", "auth", "cred", "key")


def _mask_userinfo(userinfo: str) -> str:
    user, colon, _ = userinfo.partition(":")
    return f"{user}:***" if colon else "***"  # a lone userinfo may well be a password


def mask_url(url: str) -> str:
    """``url`` fit to print: every credential replaced by ``***``.

    Works on the raw text, not on a parsed URL, so that a password holding ``/``, ``?`` or
    ``#`` cannot spill into the host part: the password of ``user:pass@`` and ``:pass@``, a
    lone userinfo (``secret@``), query values like ``?password=`` (redis-py's form, usual for
    ``unix://``), and any fragment.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"
    # The last "@" ends the userinfo, even if a password holds "/", "?" or "#" (an "@" in a
    # query value masks a bit more than needed, which is the safe side).
    userinfo, at, rest = rest.rpartition("@")
    rest, hash_sign, _ = rest.partition("#")
    head, question, query = rest.partition("?")
    pairs = []
    for pair in query.split("&") if query else ():
        name, eq, _value = pair.partition("=")
        secret = any(word in unquote(name).lower() for word in _SECRET_QUERY_WORDS)
        pairs.append(f"{name}=***" if eq and secret else pair)
    masked_userinfo = f"{_mask_userinfo(userinfo)}@" if at else ""
    fragment = "#***" if hash_sign else ""
    return f"{scheme}://{masked_userinfo}{head}{question}{'&'.join(pairs)}{fragment}"


def mask_seed(seed: str) -> str:
    """A Cluster seed fit to print: ``user:***@host:port``, ``***@host:port``, or as is."""
    userinfo, at, hostport = seed.rpartition("@")
    return f"{_mask_userinfo(userinfo)}@{hostport}" if at else seed


def _is_secret(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        return any(
            isinstance(m, Meta) and (m.extra or {}).get("secret") for m in get_args(annotation)
        )
    return False


def _masked_value(value: Any) -> Any:
    if isinstance(value, tuple):  # cluster seeds
        return tuple(mask_seed(str(v)) for v in value)
    return mask_url(value) if "://" in str(value) else "***"


def masked(settings: Settings) -> dict[str, Any]:
    """The settings as plain data, secrets masked and unset values left out (TOML has no null)."""
    out: dict[str, Any] = {}
    for section_field in msgspec.structs.fields(Settings):
        section = getattr(settings, section_field.name)
        values: dict[str, Any] = {}
        for field in msgspec.structs.fields(section):
            value = getattr(section, field.name)
            if value is None:
                continue
            if _is_secret(field.type):
                value = _masked_value(value)
            values[field.name] = msgspec.to_builtins(value)
        out[section_field.name] = values
    return out
