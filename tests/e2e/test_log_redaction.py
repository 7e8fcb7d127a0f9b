"""No credential reaches a log line: requests aiohttp's parser refuses (a control byte after a
bearer token, a header line too long, a bad request target) are logged by ``guichet serve``
as one WARNING naming the error class, without the bytes the client sent."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from pathlib import Path
from typing import Any

import pytest

from guichet.embedded import free_port
from tests.e2e.processes import Served, guichet

pytestmark = pytest.mark.slow

REFUSED = "bad request refused by the HTTP parser"


def credential() -> str:
    """A fresh JWT-shaped secret: if any of it shows up in the log, it leaked."""
    return (
        f"eyJ{secrets.token_urlsafe(24)}.eyJ{secrets.token_urlsafe(24)}.{secrets.token_urlsafe(32)}"
    )


def bad_requests(token: str) -> list[bytes]:
    raw = token.encode()
    return [
        b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + raw + b"\x01\r\n\r\n",
        b"GET /v1/rooms/r/status HTTP/1.1\r\nHost: x\r\nX-Queue-Ticket: " + raw + b"\x00\r\n\r\n",
        b"GET /v1/rooms/r/status HTTP/1.1\r\nHost: x\r\nCookie: guichet_ticket_r=" + raw
        + b"\x7f\r\n\r\n",
        b"GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + raw + b"A" * 9000
        + b"\r\n\r\n",  # a line too long
        b"GET /v1/rooms/r/events?ticket=" + raw + b"\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    ]  # fmt: skip


async def worker_then_refused(port: int, request: bytes) -> int:
    """On one connection: which worker answers it (``/healthz``), then the refused request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        worker = int(json.loads(await reader.readexactly(length))["worker"])
        writer.write(request)
        answer = await asyncio.wait_for(reader.read(), timeout=30)  # the server closes
        status_line = answer.split(b"\r\n")[0]
        assert status_line.startswith(b"HTTP/1.")
        assert status_line.split(b" ")[1] in (b"400", b"431"), answer  # 431: a line too long
        return worker
    finally:
        writer.close()


def refusals(served: Served, count: int) -> list[dict[str, Any]]:
    """Block until ``count`` refusal lines have been logged; those lines."""
    found: dict[int, dict[str, Any]] = {}
    while len(found) < count:
        entry = served.wait_for(lambda e: e.get("msg") == REFUSED and id(e) not in found, 60)
        found[id(entry)] = entry
    return list(found.values())


async def test_refused_requests_never_log_the_credential(tmp_path: Path) -> None:
    port = free_port()
    served = Served(guichet("serve", "--port", str(port), "--workers", "2"), cwd=tmp_path)
    tokens: list[str] = []
    try:
        await asyncio.to_thread(served.wait_msg, "listening", worker=0)
        await asyncio.to_thread(served.wait_msg, "listening", worker=1)
        hit: dict[int, int] = {0: 0, 1: 0}
        attempts = 0
        # A fresh connection per round lets SO_REUSEPORT spread them over both workers.
        while min(hit.values()) < len(bad_requests("x")):
            attempts += 1
            assert attempts < 400, f"SO_REUSEPORT never reached both workers: {hit}"
            token = credential()
            tokens.append(token)
            for request in bad_requests(token):
                hit[await worker_then_refused(port, request)] += 1
        # Every refusal is logged (events to wait for), at WARNING, naming its class.
        seen = await asyncio.to_thread(refusals, served, sum(hit.values()))
        served.signal(signal.SIGTERM)
        assert await asyncio.to_thread(served.wait) == 0
    finally:
        served.stop()
    assert {e["level"] for e in seen} == {"warning"}
    assert {e["error"] for e in seen} == {"BadHttpMessage", "InvalidURLError", "LineTooLong"}
    assert all(e["remote"] == "127.0.0.1" for e in seen)
    assert {(e["error"], e["status"]) for e in seen if e["error"] != "BadHttpMessage"} == {
        ("InvalidURLError", 400),
        ("LineTooLong", 431),
    }
    stderr = "".join(served.raw)
    assert '"level":"error"' not in stderr
    for token in tokens:
        for part in token.split("."):
            assert part not in stderr
