"""Typed application keys: everything a worker shares across requests, declared in one place."""

from __future__ import annotations

from aiohttp import web

from guichet.auth import Account, Admin, Verifier, authenticate_account, authenticate_admin
from guichet.config import Settings
from guichet.draw.service import Draws
from guichet.eticket.service import Etickets
from guichet.room.challenge import Challenger
from guichet.room.guard import Guard
from guichet.room.progress import Marks
from guichet.room.service import Rooms
from guichet.room.tickets import TicketSigner
from guichet.shop.live import Live
from guichet.shop.service import Shop
from guichet.signing import Keyring
from guichet.store.client import Store
from guichet.streams import StreamSlots

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
VERIFIER = web.AppKey("verifier", Verifier)
WORKER_ID = web.AppKey("worker_id", int)
OPENAPI_CACHE = web.AppKey("openapi_cache", bytes)
REDIS_URL = web.AppKey("redis_url", str)  # the embedded server's, when no redis.url is set
REQUEST_ID = web.RequestKey("request_id", str)
#: ``server.body_timeout_s``: a body must arrive whole within it (408 beyond).
BODY_TIMEOUT = web.AppKey("body_timeout_s", float)
SLOTS = web.AppKey("sse_slots", StreamSlots)  # open SSE streams (room and shop together)

# The waiting room (room/routes.py sets them up)
ROOMS = web.AppKey("rooms", Rooms)  # every room's snapshot; its pacer runs on the loop
SIGNER = web.AppKey("ticket_signer", TicketSigner)  # queue tickets (HS256)
KEYRING = web.AppKey("keyring", Keyring)  # admission tokens (EdDSA) and their JWKS
MARKS = web.AppKey("seen_marks", Marks)  # the signed `seen` of each status
CHALLENGER = web.AppKey("room_challenger", Challenger)  # proof-of-work challenges at join
GUARD = web.AppKey("room_guard", Guard)  # admission tokens at holds and entries (verified once)

# The draw and the shop (their routes.py set them up)
DRAWS = web.AppKey("draws", Draws)
SHOP = web.AppKey("shop", Shop)
LIVE = web.AppKey("shop_live", Live)  # each sale's rules and availability, refreshed

# E-tickets (eticket/routes.py sets them up)
ETICKET_KEYRING = web.AppKey("eticket_keyring", Keyring)  # signs payloads; in the JWKS too
ETICKETS = web.AppKey("etickets", Etickets)


def account_of(request: web.Request) -> Account:
    """The account calling this request (its bearer token), or a 401 problem."""
    return authenticate_account(request.app[VERIFIER], request.headers.get("Authorization"))


def admin_of(request: web.Request, scope: str | tuple[str, ...]) -> Admin:
    """The admin calling this request with ``scope`` (or one of several), or a 401/403
    problem."""
    return authenticate_admin(request.app[VERIFIER], request.headers.get("Authorization"), scope)
