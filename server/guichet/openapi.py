"""OpenAPI 3.1, generated from the msgspec types that handlers declare with :func:`endpoint`.

Each handler carries an :class:`Endpoint` (summary, request/response types, auth); the
document is built from the application's router, so a route without a declaration shows up
as a failing test rather than a silent gap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgspec
from aiohttp import web

from guichet import __version__, wire
from guichet.errors import PROBLEM_CONTENT_TYPE, ProblemBody

H = TypeVar("H", bound=Callable[..., Any])
ATTR = "__guichet_endpoint__"
REF = "#/components/schemas/{name}"

_STATUS_TEXT = {
    400: "Malformed request",
    401: "Missing, invalid or expired token",
    403: "Token lacks the required scope",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Body fails validation; `errors[]` names the fields",
    429: "Rate limited; see Retry-After",
    431: "Request line or headers over the server's limits",
    503: "Not ready",
}


@dataclass(frozen=True)
class Header:
    """A request header an endpoint reads (an OpenAPI ``in: header`` parameter)."""

    name: str
    description: str
    required: bool = False
    schema: dict[str, Any] | None = None


def admission_header(name: str) -> Header:
    """The admission-token header of guarded endpoints (room/guard.py)."""
    return Header(
        name,
        "The linked waiting room's admission token (EdDSA JWT from POST "
        "/v1/rooms/{room}/admit or its heartbeat); else the `guichet_admission_{room}` "
        "cookie those set. Needed only when the sale or draw is linked to a room.",
        schema={"type": "string", "maxLength": 2048, "pattern": wire.JWS},
    )


@dataclass(frozen=True)
class Endpoint:
    summary: str
    response: Any = None
    request: Any = None
    status: int = 200
    auth: Literal["none", "account", "admin", "admission"] = "none"
    scope: str | None = None
    content_type: str = "application/json"
    tags: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    headers: tuple[Header, ...] = ()
    #: Other media types the success response may take (e.g. a QR code as ``image/png``).
    also: tuple[str, ...] = ()
    #: Query parameters read: (name, JSON schema), optional unless named in ``required_query``.
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    required_query: tuple[str, ...] = ()
    #: Other success statuses with the same body (200 when a PUT replaces, a join repeats).
    also_status: tuple[int, ...] = ()
    #: The request body may be left out (e.g. a join's proof of work, needed by some rooms).
    request_optional: bool = False
    #: Error statuses whose problem has extension members: (status, ProblemBody subclass).
    problems: tuple[tuple[int, Any], ...] = ()


def endpoint(summary: str, **options: Any) -> Callable[[H], H]:
    """Declare a handler's contract; it becomes an operation in ``/openapi.json``."""
    spec = Endpoint(summary=summary, **options)

    def mark(handler: H) -> H:
        setattr(handler, ATTR, spec)
        return handler

    return mark


def declared(handler: Any) -> Endpoint | None:
    return getattr(handler, ATTR, None)


def api_routes(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, path template, handler) for every route, HEAD twins of GET left out."""
    out = []
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        out.append((route.method.lower(), route.resource.canonical, route.handler))
    return out


#: One Server-Sent Event as OpenAPI 3.1 describes a ``text/event-stream`` (``schema`` is each
#: event): its ``data`` is JSON.
SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "id": {"type": "string"},
        "retry": {"type": "integer"},
    },
    "required": ["data"],
}


def _path_params(path: str) -> list[dict[str, Any]]:
    params = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1].split(":")[0]
            params.append(
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            )
    return params


def build_document(app: web.Application) -> dict[str, Any]:
    routes = api_routes(app)
    types: list[Any] = [ProblemBody]
    for _, _, handler in routes:
        spec = declared(handler)
        if spec is None:
            continue
        types.extend(t for t in (spec.request, spec.response) if t is not None)
        types.extend(t for _, t in spec.problems)
    unique = list(dict.fromkeys(types))
    schemas, components = msgspec.json.schema_components(unique, ref_template=REF)
    schema_of = dict(zip(unique, schemas, strict=True))
    problem = {PROBLEM_CONTENT_TYPE: {"schema": schema_of[ProblemBody]}}

    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler in routes:
        spec = declared(handler)
        if spec is None:
            raise ValueError(f"{method.upper()} {path}: handler has no @endpoint declaration")
        op: dict[str, Any] = {
            "summary": spec.summary,
            "operationId": f"{handler.__module__.rsplit('.', 1)[-1]}_{handler.__name__}",
            "tags": list(spec.tags),
            "responses": {},
        }
        query = [{"name": n, "in": "query", "required": n in spec.required_query, "schema": schema}
                 for n, schema in spec.query]  # fmt: skip
        params = (
            _path_params(path)
            + query
            + [
                {
                    "name": h.name,
                    "in": "header",
                    "required": h.required,
                    "description": h.description,
                    "schema": h.schema or {"type": "string"},
                }
                for h in spec.headers
            ]
        )
        if params:
            op["parameters"] = params
        if spec.request is not None:
            op["requestBody"] = {
                "required": not spec.request_optional,
                "content": {"application/json": {"schema": schema_of[spec.request]}},
            }
        body: dict[str, Any] = {"description": spec.summary}
        if spec.response is not None:
            body["content"] = {spec.content_type: {"schema": schema_of[spec.response]}}
        elif spec.content_type == "text/event-stream":
            body["content"] = {spec.content_type: {"schema": SSE_EVENT}}
        elif spec.content_type != "application/json":
            body["content"] = {spec.content_type: {"schema": {"type": "string"}}}
        for media in spec.also:
            binary = {"type": "string"} if media.endswith("+xml") else {
                "type": "string", "contentMediaType": media}  # fmt: skip
            body.setdefault("content", {})[media] = {"schema": binary}
        op["responses"][str(spec.status)] = body
        for status in spec.also_status:
            op["responses"][str(status)] = body
        codes = set(spec.errors) | {431}  # any request may exceed server.max_header_bytes
        if spec.request is not None:
            codes |= {400, 413, 415, 422}
        if spec.auth != "none":
            codes.add(401)
            op["security"] = [{f"{spec.auth}Bearer": []}]
        if spec.auth == "admin":
            codes.add(403)
        for code in sorted(codes):
            op["responses"][str(code)] = {"description": _STATUS_TEXT[code], "content": problem}
        for code, typ in spec.problems:
            op["responses"][str(code)] = {
                "description": typ.__doc__.splitlines()[0] if typ.__doc__ else _STATUS_TEXT[code],
                "content": {PROBLEM_CONTENT_TYPE: {"schema": schema_of[typ]}},
            }
        paths.setdefault(path, {})[method] = op

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Guichet",
            "version": __version__,
            "description": "Waiting room, lottery and live shop for mass ticket sales.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "accountBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Account token from the ticketing front-end's identity provider",
                },
                "adminBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Admin token with `scope` claims (admin audience)",
                },
                "admissionBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Admission token from /v1/rooms/{room}/admit (EdDSA, JWKS)",
                },
            },
        },
    }
