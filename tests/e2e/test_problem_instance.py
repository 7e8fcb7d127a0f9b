"""The ``instance`` of a problem is a safe relative reference to the request path: never a
scheme-relative (``//host``) or absolute URL, whatever request target the client sent."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guichet.errors import PROBLEM_CONTENT_TYPE
from tests.conftest import Client

#: A path-absolute reference: one slash, then RFC 3986 pchars and %XX escapes only.
SAFE = re.compile(r"/(?!/)(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-F]{2})*")


async def get_raw(client: Client, target: bytes) -> tuple[int, str, bytes]:
    """``GET target`` sent byte for byte (clients normalise ``//`` and ``\\``)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    types = [v for n, _, v in (x.partition(":") for x in lines[1:]) if n.lower() == "content-type"]
    return int(lines[0].split()[1]), "".join(types).strip(), body


def assert_safe(instance: str) -> None:
    assert SAFE.fullmatch(instance), instance
    resolved = urlsplit(urljoin("https://guichet.example/v1/rooms/", instance))
    assert resolved.scheme == "https"
    assert resolved.netloc == "guichet.example"


async def problem_instance(client: Client, target: bytes) -> str:
    status, content_type, body = await get_raw(client, target)
    assert 400 <= status < 500, body
    assert content_type.startswith(PROBLEM_CONTENT_TYPE), body
    problem: dict[str, Any] = json.loads(body)
    return str(problem["instance"])


@pytest.mark.parametrize(
    ("target", "instance"),
    [
        (b"//evil.example/x", "/evil.example/x"),
        (b"///evil.example", "/evil.example"),
        (b"/%2F%2Fevil.example/x", "/evil.example/x"),
        (b"/\\evil.example/x", "/%5Cevil.example/x"),
        (b"/%5C%5Cevil.example", "/%5C%5Cevil.example"),
        (b"/a%00b%0A", "/a%00b%0A"),
        (b"/caf%C3%A9?q=1", "/caf%C3%A9"),
        (b"/100%25", "/100%25"),
        (b"/no/such/thing", "/no/such/thing"),
    ],
)
async def test_instance_is_a_safe_relative_reference(
    client: Client, target: bytes, instance: str
) -> None:
    got = await problem_instance(client, target)
    assert got == instance
    assert_safe(got)


pieces = st.sampled_from(
    ["/", "//", "\\", "a", "evil.example", ":", "@", ".", "..", "~", "!", "'", "(", "+", ";",
     "=", "%2F", "%5C", "%00", "%09", "%0A", "%25", "%FF", "%C3%A9", "%ED%B3%BF", "%", "%zz"]
)  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.lists(pieces, max_size=8).map("".join))
async def test_any_path_gives_a_safe_instance(client: Client, path: str) -> None:
    target = ("/no-route" + path) if not path.startswith("/") else path
    status, content_type, body = await get_raw(client, target.encode())
    assert status < 500, body
    if content_type.startswith(PROBLEM_CONTENT_TYPE):
        assert_safe(str(json.loads(body)["instance"]))
    else:  # a route that exists (``/``-only paths collapse to one) or aiohttp's own 400
        assert status in (200, 400), body
