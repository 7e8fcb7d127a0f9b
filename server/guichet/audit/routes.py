"""HTTP routes of the audit log: the public anchor and keys, and the admin reading."""

from __future__ import annotations

import re

from aiohttp import web

from guichet import errors, openapi, webio, wire
from guichet.audit import anchors, chains
from guichet.audit.record import Record
from guichet.signing import JWK
from guichet.state import SETTINGS, STORE, admin_of

SCOPE_READ = "audit:read"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_CHAIN = re.compile(r"[A-Za-z0-9_.:\-]{1,200}")


class AnchorView(wire.Reply, kw_only=True):
    """The latest signed anchor: a compact JWS (EdDSA) whose claims name every chain's head."""

    seq: int
    at: str  # RFC 3339, when it was appended (Redis TIME)
    kid: str
    jws: str
    hash: str  # SHA-256 of the JWS: what the next anchor names as its prev


class AuditJwks(wire.Reply, kw_only=True):
    """The public keys that verify audit anchors (every key ever used, kept for good)."""

    keys: list[JWK]


class ChainView(wire.Reply, kw_only=True):
    chain: str
    length: int
    head_seq: int
    head_hash: str
    head_at: str  # RFC 3339


class AuditOverview(wire.Reply, kw_only=True):
    chains: list[ChainView]
    anchor: AnchorView | None = None


class RecordPage(wire.Reply, kw_only=True):
    chain: str
    records: list[Record]
    #: the ``after`` that reads on (absent when there is no more)
    next: int | None = None


def _view(a: chains.StoredAnchor) -> AnchorView:
    return AnchorView(seq=a.seq, at=wire.rfc3339(a.at / 1e6), kid=a.kid, jws=a.jws, hash=a.hash)


@openapi.endpoint(
    "The latest signed audit anchor (public: keep copies, so a truncated log shows); 404 "
    "before the first one",
    response=AnchorView,
    errors=(404,),
    tags=("audit",),
)
async def latest_anchor(request: web.Request) -> web.Response:
    last = await chains.latest_anchor(request.app[STORE].client)
    if last is None:
        raise errors.not_found("no audit anchor yet")
    response = webio.respond(_view(last))
    response.headers["Cache-Control"] = "no-cache"
    return response


@openapi.endpoint(
    "Public keys that verify audit anchors (JWKS, RFC 7517): every key that ever signed one "
    "(`guichet audit verify --jwks`)",
    response=AuditJwks,
    tags=("audit",),
)
async def audit_keys(request: web.Request) -> web.Response:
    response = webio.respond(AuditJwks(keys=request.app[anchors.KEYRING].published()))
    response.headers["Cache-Control"] = "public, max-age=60"
    return response


@openapi.endpoint(
    "The audit chains (one per hash tag) with their length and head, and the latest anchor",
    response=AuditOverview,
    auth="admin",
    scope=SCOPE_READ,
    tags=("admin", "audit"),
)
async def overview(request: web.Request) -> web.Response:
    admin_of(request, SCOPE_READ)
    client = request.app[STORE].client
    views = []
    for tag in await chains.tags(client):
        length, last = await chains.head(client, tag)
        if last is not None:
            views.append(
                ChainView(
                    chain=tag,
                    length=length,
                    head_seq=last.seq,
                    head_hash=last.hash,
                    head_at=wire.rfc3339(last.at / 1e6),
                )
            )
    anchor = await chains.latest_anchor(client)
    return webio.respond(
        AuditOverview(chains=views, anchor=None if anchor is None else _view(anchor))
    )


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw.isascii() and raw.isdigit() and len(raw) <= 12 and low <= int(raw) <= high:
        return int(raw)
    detail = f"an integer from {low} to {high}"
    raise errors.invalid_body(
        [errors.FieldError(field=name, detail=detail)], f"{name}: {raw[:30]!r} is not {detail}"
    )


@openapi.endpoint(
    "One audit chain's records after `after` (a seq; 0 = from the first), at most `limit` "
    f"(1..{MAX_LIMIT}, default {DEFAULT_LIMIT}); `next` is the `after` that reads on",
    response=RecordPage,
    auth="admin",
    scope=SCOPE_READ,
    errors=(404, 422),
    query=(
        ("after", {"type": "integer", "minimum": 0}),
        ("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}),
    ),
    tags=("admin", "audit"),
)
async def chain_records(request: web.Request) -> web.Response:
    admin_of(request, SCOPE_READ)
    tag = request.match_info["chain"]
    after = _int_query(request, "after", 0, 0, 10**12)
    limit = _int_query(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    client = request.app[STORE].client
    if not _CHAIN.fullmatch(tag) or (await chains.head(client, tag))[1] is None:
        raise errors.not_found(f"no audit chain {tag[:60]!r}")
    records, following = await chains.page(client, tag, after, limit)
    return webio.respond(RecordPage(chain=tag, records=records, next=following))


def setup(app: web.Application) -> None:
    """Routes of the audit log and the anchors' background task (built outside the loop)."""
    cfg = app[SETTINGS].audit
    app[anchors.KEYRING] = anchors.keyring(cfg)
    app.cleanup_ctx.append(anchors.anchors_ctx(STORE, cfg.anchor_interval_s))
    r = app.router
    r.add_get("/v1/audit/anchor", latest_anchor)
    r.add_get("/v1/audit/keys", audit_keys)
    r.add_get("/v1/admin/audit", overview)
    r.add_get("/v1/admin/audit/{chain}", chain_records)
