"""The audit act of an HTTP request: its actor (the token's subject) and the digest of what it
asked (method, path with query, body), under the service's audit digest key."""

from __future__ import annotations

from aiohttp import web

from guichet.audit.act import Act, Digester
from guichet.config import AuditConfig
from guichet.files import secret_from_config_or_file

DIGESTER = web.AppKey("audit_digester", Digester)


def digester(cfg: AuditConfig) -> Digester:
    """``audit.digest_secret`` (>= 32 bytes), else a local file made on first use."""
    return Digester(secret_from_config_or_file(cfg.digest_secret, cfg.digest_secret_file,
                                               "audit.digest_secret", 32, exact=False))  # fmt: skip


async def request_act(
    request: web.Request, actor: str, action: str, object: str, body: bytes | None = None
) -> Act:
    """The act of this request, for the script that performs it (see audit/act.py). ``body``:
    the bytes a route streamed itself (``webio.read_large``); otherwise the body ``read()``
    kept (``can_read_body`` is False once it was read: it must not decide)."""
    if body is None:
        body = await request.read() if request.body_exists else b""
    return streamed_act(request, actor, action, object, body)


def streamed_act(request: web.Request, actor: str, action: str, object: str, body: bytes) -> Act:
    """The act of a request whose body the handler already holds (read as a stream)."""
    what = b"%s %s\n" % (request.method.encode(), request.rel_url.raw_path_qs.encode()) + body
    return request.app[DIGESTER].act(actor, action, object, what)
