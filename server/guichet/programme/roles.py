"""Who may act on the State programme, from the identity token (seed 002 §intro: a central
coordinator, the DIJOP, holds the pool; ministries and operators distribute; group leaders
name their group's participants).

- **central** — admin token with scope ``programme:central``: pool, programmes, allocations,
  reclaim, every programme's data;
- **operator** — admin token with scope ``programme:operate`` whose programmes claim
  (``security.programmes_claim``) lists the programme: candidates, lotteries, exceptions,
  leaders of *that* programme only;
- **auditor** — admin token with scope ``programme:audit``: read-only checks and reports;
- **group leader** — an account token whose account an operator invited into a group of a
  programme (``leaders:<P>``; checked by the acts that allow leaders).

Every act records its actor: the admin token's subject, or ``account:<id>`` for a leader.
"""

from __future__ import annotations

from aiohttp import web

from guichet import errors
from guichet.auth import Admin
from guichet.state import admin_of

CENTRAL = "programme:central"
OPERATE = "programme:operate"
AUDIT = "programme:audit"


def central(request: web.Request) -> Admin:
    """The central coordinator, or 401/403."""
    return admin_of(request, CENTRAL)


def operator(request: web.Request, programme: str) -> Admin:
    """An operator bound to ``programme`` by its token, or 401/403 naming the programme."""
    admin = admin_of(request, OPERATE)
    if programme not in admin.programmes:
        raise errors.Problem(
            403, "not-your-programme", "Not an operator of this programme",
            f"the token's programmes claim does not list {programme!r}",
            context={"programme": programme},
        )  # fmt: skip
    return admin


def actor_of(admin: Admin) -> str:
    """The actor recorded with an act done by an admin token."""
    return admin.subject


def leader_actor(account: str) -> str:
    """The actor recorded with an act done by a group leader's account."""
    return f"account:{account}"
