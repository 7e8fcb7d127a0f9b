"""Every parser of a credential from outside (account and admin bearer tokens, queue tickets,
admission tokens of the heartbeat) answers arbitrary bytes and arbitrary JOSE headers or
claims — even correctly signed ones — with its refusal, never another exception."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guichet import auth, errors
from guichet.config import SecurityConfig
from guichet.room.guard import ADMISSION_COOKIE_PREFIX, REASONS, Guard
from guichet.room.model import RoomSpec
from guichet.room.service import Runtime
from guichet.room.tickets import TICKET_AUDIENCE, Ticket, TicketSigner, verify_admission
from guichet.signing import Keyring
from guichet.store.keys import RoomKeys

T = TypeVar("T")
ROOM = "fuzz-room"
SECRET = b"s" * 32
TICKET_ISSUER = "guichet-rooms"
ADMISSION = {"audience": "shop.example", "issuer": "guichet-rooms"}

TOKEN_REASONS = {
    "missing", "malformed", "expired", "not_yet_valid", "wrong_audience", "wrong_issuer",
    "bad_signature", "bad_algorithm", "ttl_too_long", "insufficient_scope",
}  # fmt: skip
TICKET_REASONS = {"forged", "expired", "other_room", "malformed"}

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- strategies ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: 10**400 is valid JSON
    | st.floats()  # inf and nan: Python's json writes and reads them
    | st.text(max_size=20)
    | st.sampled_from(["n:abc:1", "p::1", "n:1:1", "n:1:1:1", "", "acc-1", "guichet-dev"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
CLAIMS = ["iss", "aud", "sub", "exp", "iat", "nbf", "scope", "tid", "adm", "room", "sid", "jti"]
HEADERS = ["alg", "typ", "kid", "crit", "b64", "jku", "x5c", "cty"]
overrides = st.dictionaries(st.sampled_from(CLAIMS) | st.text(max_size=6), json_values, max_size=4)
header_overrides = st.dictionaries(
    st.sampled_from(HEADERS) | st.text(max_size=6), json_values, max_size=3
)
#: What aiohttp hands over for a header value: any bytes, decoded with surrogateescape.
raw_strings = st.binary(max_size=300).map(lambda b: b.decode("utf-8", "surrogateescape"))
segments = st.binary(max_size=60).map(b64) | st.text(max_size=30)


def signed(
    header: dict[str, Any],
    payload: bytes,
    sign: Callable[[bytes], bytes],
) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(payload)}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


@st.composite
def tokens(
    draw: st.DrawFn, base_claims: dict[str, Any], alg: str, sign: Callable[[bytes], bytes]
) -> str:
    """Garbage, or a JWS signed with the right key whose header and claims are arbitrary
    changes of a valid one (so every check after the signature is reached)."""
    kind = draw(st.sampled_from(["bytes", "segments", "claims", "payload"]))
    if kind == "bytes":
        return draw(raw_strings)
    if kind == "segments":
        return ".".join(draw(st.lists(segments, min_size=1, max_size=4)))
    header = {"alg": alg, "typ": "JWT", **draw(header_overrides)}
    if kind == "payload":
        return signed(header, draw(st.binary(max_size=80)), sign)
    claims = {**base_claims, **draw(overrides)}
    return signed(header, json.dumps(claims).encode(), sign)


# --- parsers under test ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dev_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def verifier(dev_key: Ed25519PrivateKey) -> auth.Verifier:
    return auth.Verifier(
        SecurityConfig(dev_issuer=False), {auth.public_jwk(dev_key)["kid"]: dev_key.public_key()}
    )


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    return Keyring(tmp_path_factory.mktemp("admission-keys"))


def bearer_claims(audience: str) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "guichet-dev", "aud": audience, "sub": "acc-1", "iat": now, "exp": now + 60}


def outcome(call: Callable[[], T]) -> T | auth.Refused | errors.Problem:
    """What a parser answers: its result or its refusal; any other exception fails the test."""
    try:
        return call()
    except (auth.Refused, errors.Problem) as refusal:
        return refusal


def refused_as_401(answer: object) -> bool:
    """The answer a route turns into 401 (or 403 for a valid admin token lacking the scope)."""
    if not isinstance(answer, errors.Problem):
        return False
    scoped = answer.status == 403 and answer.slug == "forbidden"
    return (answer.status == 401 or scoped) and "WWW-Authenticate" in answer.headers


@FUZZ
@given(data=st.data())
def test_account_tokens(
    verifier: auth.Verifier, dev_key: Ed25519PrivateKey, data: st.DataObject
) -> None:
    token = data.draw(tokens(bearer_claims("guichet"), "EdDSA", dev_key.sign))
    for header in (token, f"Bearer {token}"):
        answer = outcome(partial(auth.authenticate_account, verifier, header))
        if isinstance(answer, auth.Account):
            assert auth.printable(answer.id)
        else:
            assert refused_as_401(answer), answer
            assert isinstance(answer, errors.Problem)
            assert answer.status == 401


@FUZZ
@given(data=st.data())
def test_admin_tokens(
    verifier: auth.Verifier, dev_key: Ed25519PrivateKey, data: st.DataObject
) -> None:
    claims = {**bearer_claims("guichet-admin"), "scope": "ops:read"}
    token = data.draw(tokens(claims, "EdDSA", dev_key.sign))
    answer = outcome(lambda: auth.authenticate_admin(verifier, f"Bearer {token}", "ops:read"))
    if isinstance(answer, auth.Admin):
        assert "ops:read" in answer.scopes
    else:
        assert refused_as_401(answer), answer


@FUZZ
@given(data=st.data())
def test_bearer_header(data: st.DataObject) -> None:
    header = data.draw(raw_strings)
    answer = outcome(lambda: auth.bearer(header))
    if isinstance(answer, str):
        assert answer
        assert answer == answer.strip()
    else:
        assert isinstance(answer, auth.Refused)
        assert answer.reason in ("missing", "malformed")


@FUZZ
@given(data=st.data())
def test_queue_tickets(data: st.DataObject) -> None:
    signer = TicketSigner(SECRET, TICKET_ISSUER, cache_size=16)
    claims = {
        "iss": TICKET_ISSUER,
        "aud": TICKET_AUDIENCE + ROOM,
        "sub": "acc-1",
        "tid": "n:0:1700000000",
        "exp": int(time.time()) + 3600,
    }

    def sign(data: bytes) -> bytes:
        return hmac.new(SECRET, data, hashlib.sha256).digest()

    token = data.draw(tokens(claims, "HS256", sign))
    answer = outcome(lambda: signer.verify(token, ROOM))
    if isinstance(answer, Ticket):
        assert answer.room == ROOM
        assert answer.index >= 0
        assert answer.joined_at >= 0
    else:
        assert isinstance(answer, auth.Refused)
        assert answer.reason in TICKET_REASONS


@FUZZ
@given(data=st.data())
def test_admission_tokens(keyring: Keyring, data: st.DataObject) -> None:
    now = int(time.time())
    claims = {
        "iss": ADMISSION["issuer"],
        "aud": ADMISSION["audience"],
        "sub": "acc-1",
        "room": ROOM,
        "sid": "s1",
        "iat": now,
        "exp": now + 60,
    }
    active = keyring.active
    token = data.draw(
        tokens(claims, "EdDSA", active.key.sign).map(
            lambda t: t if t.count(".") != 2 else _with_kid(t, active.kid)
        )
    )
    answer = outcome(lambda: verify_admission(keyring, token, **ADMISSION))
    if isinstance(answer, dict):
        assert all(auth.printable(answer[name], 256) for name in ("sub", "room", "sid"))
    else:
        assert isinstance(answer, auth.Refused)
        assert answer.reason in ("forged", "expired", "malformed")


def _with_kid(token: str, kid: str) -> str:
    """Most generated admission tokens name the active key, as real ones do."""
    head = token.split(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except ValueError:
        return token
    if isinstance(header, dict) and "kid" not in header:
        header["kid"] = kid
        return ".".join([b64(json.dumps(header).encode()), *token.split(".")[1:]])
    return token


def test_the_fuzzers_reach_valid_credentials(
    verifier: auth.Verifier, dev_key: Ed25519PrivateKey, keyring: Keyring, tmp_path: Path
) -> None:
    """The strategies' base claims are valid: what the fuzzers change is all that fails."""
    assert verifier.account(auth.compact_jws(
        signed({"alg": "EdDSA"}, json.dumps(bearer_claims("guichet")).encode(), dev_key.sign)
    )).id == "acc-1"  # fmt: skip
    now = int(time.time())
    admission = {**ADMISSION, "sub": "a", "room": ROOM, "sid": "s", "iat": now, "exp": now + 60}
    admission["aud"], admission["iss"] = admission.pop("audience"), admission.pop("issuer")
    token = signed(
        {"alg": "EdDSA", "kid": keyring.active.kid},
        json.dumps(admission).encode(),
        keyring.active.key.sign,
    )
    assert verify_admission(keyring, token, **ADMISSION)["sid"] == "s"


# --- the guard of linked sales and draws (room/guard.py) -------------------------------------


def _guard_and_room(tmp_path: Path) -> tuple[Guard, Keyring, list[Runtime]]:
    keyring = Keyring(tmp_path / "guard-keys")
    now = datetime.now(UTC)
    spec = RoomSpec(
        opens_at=now - timedelta(hours=1), closes_at=now + timedelta(hours=1), rate_per_s=1,
        max_active=1, audience=ADMISSION["audience"], target_url="https://shop.example/",
        sale="s1",
    )  # fmt: skip
    guard = Guard(keyring, ADMISSION["issuer"], cache_size=64)
    return guard, keyring, [Runtime(ROOM, RoomKeys(ROOM), spec)]


@FUZZ
@given(raw=st.text(max_size=3000), cookie=st.booleans())
def test_the_guard_answers_arbitrary_tokens_with_admission_required(
    tmp_path: Path, raw: str, cookie: bool
) -> None:
    guard, _, linked = _guard_and_room(tmp_path)
    header, cookies = (None, {ADMISSION_COOKIE_PREFIX + ROOM: raw}) if cookie else (raw, {})
    with pytest.raises(errors.Problem) as caught:
        guard.check(linked, "sale", "s1", "acc", header, cookies)
    assert (caught.value.status, caught.value.slug) == (403, "admission-required")
    assert caught.value.context is not None
    assert caught.value.context["room"] == ROOM
    assert caught.value.context["reason"] in REASONS


@FUZZ
@given(data=st.data())
def test_the_guard_refuses_signed_tokens_of_any_other_shape(
    tmp_path: Path, data: st.DataObject
) -> None:
    """Garbage, or signed by the room keyring with arbitrary headers and claims: a 403
    ``admission-required`` (never a crash), unless it is exactly as the room issues them."""
    guard, keyring, linked = _guard_and_room(tmp_path)
    now = int(time.time())
    good = {"iss": ADMISSION["issuer"], "aud": ADMISSION["audience"], "sub": "acc", "room": ROOM,
            "sid": f"{ROOM}:1", "iat": now, "exp": now + 60}  # fmt: skip
    active = keyring.active
    token = data.draw(
        tokens(good, "EdDSA", active.key.sign).map(
            lambda t: t if t.count(".") != 2 else _with_kid(t, active.kid)
        )
    )
    answer = outcome(lambda: guard.check(linked, "sale", "s1", "acc", token, {}))
    if isinstance(answer, errors.Problem):
        assert (answer.status, answer.slug) == (403, "admission-required")
    else:
        assert answer is None
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        assert {k: claims[k] for k in ("iss", "aud", "sub", "room")} == {
            k: good[k] for k in ("iss", "aud", "sub", "room")
        }
