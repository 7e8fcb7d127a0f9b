"""The landing page lists the rooms open to the public as links to their pages: rooms made
through the admin API appear (on every worker), closed and unlisted ones never, and a name is
always text, never markup."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Client, Tokens
from tests.e2e.room_helpers import Api, iso, problem
from tests.served import ProcessServer

HOSTILE = '<script>alert("x")</script> & <b>bold</b>'


async def known_everywhere(client: Client, *rooms: str) -> None:
    """Under ``guichet serve --workers 2``, wait until every worker has logged that it loaded
    each room (the creating one at once, the other at its index refresh; a worker logs a room
    once): an event, not a sleep. In process the admin call itself loaded them."""
    server = client.server
    if not isinstance(server, ProcessServer):
        return
    assert server.served is not None
    seen = dict.fromkeys(rooms, 0)

    def all_loaded(entry: dict[str, Any]) -> bool:
        if entry.get("msg") == "room loaded" and entry.get("room") in seen:
            seen[entry["room"]] += 1
        return all(count >= server.workers for count in seen.values())

    await asyncio.to_thread(server.served.wait_for, all_loaded, 20.0)


async def landing(client: Client) -> str:
    """``/`` on a fresh connection (so that successive calls reach both workers)."""
    resp = await client.get("/", headers={"Connection": "close"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    return await resp.text()


def links(body: str) -> dict[str, str]:
    """room id -> the text of its link, as the page shows them."""
    found = re.findall(r'<a href="/rooms/([a-z0-9-]+)" data-testid="room-link">(.*?)</a>', body)
    return dict(found)


async def test_landing_lists_the_rooms_open_to_the_public(client: Client, tokens: Tokens) -> None:
    api = Api(client, tokens)
    now = datetime.now(UTC).replace(microsecond=0)
    body = await landing(client)
    assert links(body) == {}
    assert "No room is open to the public right now." in body
    await api.create("summer-tour", name="Summer tour 2025")
    await api.create("winter-gala", opens_at=iso(now + timedelta(hours=1)))
    await api.create("hostile", name=HOSTILE, paused=True)
    await api.create("over", opens_at=iso(now - timedelta(hours=2)),
                     closes_at=iso(now - timedelta(minutes=1)))  # fmt: skip
    await api.create("presale", name="Members only", listed=False)
    await known_everywhere(client, "summer-tour", "winter-gala", "hostile", "over", "presale")
    for _ in range(6):  # fresh connections: both workers answer, with the same list
        body = await landing(client)
        assert links(body) == {
            "hostile": "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; "
            "&amp; &lt;b&gt;bold&lt;/b&gt;",
            "summer-tour": "Summer tour 2025",
            "winter-gala": "winter-gala",  # no name: the id
        }
        assert "<script" not in body  # the name is text, not markup
        assert "<b>" not in body
        assert "Members only" not in body
        assert "/rooms/over" not in body
        assert "(<code>summer-tour</code>): open</li>" in body
        assert "(<code>hostile</code>): paused</li>" in body
        opens = iso(now + timedelta(hours=1))
        assert f'(<code>winter-gala</code>): opens <time datetime="{opens}">' in body
        assert "/rooms/<var>room-id</var>#token=<var>JWT</var>" in body  # how pages are opened
    page = await client.get("/rooms/summer-tour")
    assert page.status == 200


async def test_an_unlisted_room_leaves_the_page_and_a_bad_name_is_refused(
    client: Client, tokens: Tokens
) -> None:
    api = Api(client, tokens)
    await api.create("summer-tour", name="Summer tour")
    await known_everywhere(client, "summer-tour")
    assert "summer-tour" in links(await landing(client))
    for name in ("", "line\nbreak", "x" * 101, 7):
        resp = await client.put(
            "/v1/admin/rooms/summer-tour",
            json={**(await api.stats("summer-tour"))["spec"], "name": name},
            headers=api.admin,
        )
        body = await problem(resp, 422)
        assert [e["field"] for e in body["errors"]] == ["name"], body
    assert (await api.stats("summer-tour"))["spec"]["name"] == "Summer tour"  # unchanged
    await api.create("summer-tour", name="Summer tour", listed=False)
    spec = (await api.stats("summer-tour"))["spec"]
    assert spec["listed"] is False
    assert spec["name"] == "Summer tour"
    if not isinstance(client.server, ProcessServer):  # another worker: at its next tick
        assert links(await landing(client)) == {}
