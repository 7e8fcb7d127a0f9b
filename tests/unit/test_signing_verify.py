"""``signing.verify`` checks our own tokens directly (auth_jws.py, libsodium): held here to the
PyJWT version it replaced — same claims, or the same refusal reason and message — and fuzzed."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from guichet import auth, signing
from guichet.auth import DECODE_FAILURES, Refused, compact_jws
from guichet.eticket.cli import JwksKeys
from guichet.signing import Keyring, KeySource

ISS, AUD, WHAT = "guichet", "room-a", "admission token"
HOUR = 3600
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
MISSING: Any = ...  # a claim or header member left out


def pyjwt_verify(
    keys: KeySource, token: str, *, what: str, audience: str, issuer: str, require: Sequence[str]
) -> dict[str, Any]:
    """The reference: ``signing.verify`` as it was, through PyJWT (commit 420a823)."""
    compact_jws(token, what)
    try:
        kid = jwt.get_unverified_header(token).get("kid", "")
    except (jwt.PyJWTError, *DECODE_FAILURES):
        raise Refused("malformed", f"{what} is not a JWT") from None
    key = keys.public_key(kid) if isinstance(kid, str) else None
    if key is None:
        raise Refused("forged", f"{what} key is unknown")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["EdDSA"],
            audience=audience,
            issuer=issuer,
            options={"require": list(require)},
        )
    except jwt.ExpiredSignatureError:
        raise Refused("expired", f"{what} has expired") from None
    except jwt.PyJWTError:
        raise Refused("forged", f"{what} does not verify") from None
    except DECODE_FAILURES:
        raise Refused("malformed", f"{what} could not be decoded") from None
    return claims


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> Keyring:
    return Keyring(tmp_path_factory.mktemp("ring"))


def outcome(verify: Any, keys: KeySource, token: str, require: Sequence[str]) -> tuple[Any, ...]:
    try:
        return ("ok", verify(keys, token, what=WHAT, audience=AUD, issuer=ISS, require=require))
    except Refused as exc:
        return ("refused", exc.reason, exc.detail)


def same(keys: KeySource, token: str, require: Sequence[str] = ()) -> tuple[Any, ...]:
    direct = outcome(signing.verify, keys, token, require)
    assert direct == outcome(pyjwt_verify, keys, token, require), token
    return direct


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(key: Ed25519PrivateKey, header: dict[str, Any], payload: dict[str, Any] | bytes) -> str:
    parts = [json.dumps({k: v for k, v in header.items() if v is not MISSING}).encode()]
    parts.append(payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    signing_input = f"{b64(parts[0])}.{b64(parts[1])}"
    return f"{signing_input}.{b64(key.sign(signing_input.encode()))}"


def admission(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {
        "iss": ISS, "aud": AUD, "sub": "acc-1", "room": "r1", "sid": "s1",
        "iat": now, "exp": now + 600,
    }  # fmt: skip
    out.update(changes)
    return {k: v for k, v in out.items() if v is not MISSING}


REQUIRE = ("exp", "sub", "room", "sid")


def test_a_token_the_ring_signed_verifies_with_its_claims(ring: Keyring) -> None:
    claims = admission()
    assert same(ring, ring.sign(claims), REQUIRE) == ("ok", claims)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"exp": int(time.time()) - 60, "iss": "evil"}, "expired"),  # exp is checked first
        ({"nbf": int(time.time()) + HOUR, "exp": int(time.time()) - 60}, "forged"),
        ({"iat": int(time.time()) + HOUR}, "forged"),
        ({"exp": "soon"}, "forged"),
        ({"exp": str(int(time.time()) + 6 * HOUR)}, None),  # read as a date (made at collection)
        ({"aud": "room-b"}, "forged"),
        ({"aud": ["room-b", AUD]}, None),
        ({"aud": []}, "forged"),
        ({"iss": MISSING}, "forged"),
        ({"iss": [ISS]}, "forged"),
        ({"sid": MISSING}, "forged"),
        ({"sub": 7}, "forged"),
        ({"jti": 7}, "forged"),
    ],
)
def test_claims_are_refused_as_pyjwt_refused_them(
    ring: Keyring, changes: dict[str, Any], reason: str | None
) -> None:
    header = {"alg": "EdDSA", "typ": "JWT", "kid": ring.kid}
    got = same(ring, signed(ring.active.key, header, admission(**changes)), REQUIRE)
    assert got[0] == "ok" if reason is None else got[1] == reason


def test_every_keysource_verifies(ring: Keyring) -> None:
    """The keyring and a published JWKS (``guichet eticket verify``) both hold raw keys."""
    token = ring.sign(admission())
    jwks = JwksKeys({"keys": ring.published()})
    assert jwks.raw_public_key(ring.kid) == ring.raw_public_key(ring.kid)
    assert same(jwks, token, REQUIRE)[0] == "ok"
    assert ring.raw_public_key("nope") is None
    assert jwks.raw_public_key("nope") is None


def test_a_rotated_ring_knows_the_new_key_and_keeps_the_old(tmp_path: Path) -> None:
    ring = Keyring(tmp_path)
    old = ring.sign(admission())
    ring.rotate(now=time.time() + 1)
    ring.refresh()
    assert same(ring, ring.sign(admission()))[0] == same(ring, old)[0] == "ok"


# --- the differential property ---------------------------------------------------------------

OFFSETS = st.sampled_from([-HOUR, -100, -10, 10, 100, HOUR])
ODD_DATES = st.sampled_from([MISSING, None, "soon", True, [1], 1.5])
ODD = st.sampled_from([MISSING, None, 7, "", ["x"], {"a": 1}])


@st.composite
def claim_sets(draw: st.DrawFn) -> dict[str, Any]:
    """Valid admission claims with up to three of them changed (dates around now, odd
    types, missing, another audience or issuer)."""
    now = int(time.time())
    names = ["exp", "iat", "nbf", "iss", "aud", "sub", "room", "sid", "jti"]
    changed = draw(st.sets(st.sampled_from(names), max_size=3))
    changes: dict[str, Any] = {}
    for name in changed & {"exp", "iat", "nbf"}:
        changes[name] = draw(
            st.one_of(
                OFFSETS.map(lambda d: now + d),
                OFFSETS.map(lambda d: str(now + d)),
                OFFSETS.map(lambda d: now + d + 0.5),
                ODD_DATES,
            )
        )
    if "iss" in changed:
        changes["iss"] = draw(st.one_of(st.sampled_from(["evil", [ISS]]), ODD))
    if "aud" in changed:
        changes["aud"] = draw(
            st.one_of(st.sampled_from(["room-b", [AUD, "x"], [], ["x", 7], ["x"]]), ODD)
        )
    for name in changed & {"sub", "room", "sid", "jti"}:
        changes[name] = draw(ODD)
    return admission(**changes)


MUTATIONS = st.sampled_from(
    [
        "none",
        "flip-header",
        "flip-payload",
        "flip-signature",
        "other-key",
        "other-key-own-kid",
        "alg",
        "kid-unknown",
        "kid-odd",
        "kid-missing",
    ]
)


@st.composite
def tokens(draw: st.DrawFn, ring: Keyring, other: Ed25519PrivateKey) -> str:
    claims = draw(claim_sets())
    mutation = draw(MUTATIONS)
    header: dict[str, Any] = {"alg": "EdDSA", "typ": "JWT", "kid": ring.kid}
    key = ring.active.key
    if mutation == "other-key":
        key = other
    elif mutation == "other-key-own-kid":
        key, header["kid"] = other, auth.public_jwk(other)["kid"]
    elif mutation == "alg":
        alg = draw(st.sampled_from(["HS256", "none", "ES256", "eddsa", "", None, 7, ["EdDSA"]]))
        header["alg"] = alg
    elif mutation == "kid-unknown":
        header["kid"] = draw(st.sampled_from(["", "unknown", ring.kid + "x"]))
    elif mutation == "kid-odd":
        header["kid"] = draw(st.sampled_from([7, None, [ring.kid], {"k": 1}, True]))
    elif mutation == "kid-missing":
        header["kid"] = MISSING
    token = signed(key, header, claims)
    if mutation.startswith("flip-"):
        segments = token.split(".")
        i = ["flip-header", "flip-payload", "flip-signature"].index(mutation)
        at = draw(st.integers(0, len(segments[i]) - 1))
        new = draw(st.sampled_from(ALPHABET).filter(lambda c: c != segments[i][at]))
        segments[i] = segments[i][:at] + new + segments[i][at + 1 :]
        token = ".".join(segments)
    return token


OTHER = Ed25519PrivateKey.generate()
REQUIRED_LISTS = st.lists(
    st.sampled_from(["exp", "iat", "nbf", "sub", "room", "sid", "iss", "aud", "jti"]), unique=True
)


@settings(
    max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), require=REQUIRED_LISTS)
def test_direct_verify_agrees_with_pyjwt(
    ring: Keyring, data: st.DataObject, require: list[str]
) -> None:
    got = same(ring, data.draw(tokens(ring, OTHER)), require)
    event(got[0] if got[0] == "ok" else f"refused: {got[1]}")


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(extra=st.dictionaries(st.sampled_from(["exp", "iat", "sub", "aud", "iss", "x"]), JSON))
def test_any_signed_json_claims_agree_with_pyjwt(ring: Keyring, extra: dict[str, Any]) -> None:
    header = {"alg": "EdDSA", "kid": ring.kid}
    same(ring, signed(ring.active.key, header, admission(**extra)), REQUIRE)


# --- fuzz: outside bytes only ever get a refusal ---------------------------------------------

SHAPED = st.from_regex(
    r"[A-Za-z0-9_-]{1,40}\.[A-Za-z0-9_-]{1,40}\.[A-Za-z0-9_-]{0,90}", fullmatch=True
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.one_of(
        st.text(),
        SHAPED,
        st.tuples(st.binary(), st.binary(), st.binary()).map(lambda p: ".".join(map(b64, p))),
        st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")),
    )
)
def test_verify_of_any_text_only_refuses(ring: Keyring, text: str) -> None:
    with pytest.raises(Refused) as refused:
        signing.verify(ring, text, what=WHAT, audience=AUD, issuer=ISS, require=REQUIRE)
    assert refused.value.reason in {"malformed", "forged"}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=st.binary())
def test_any_signed_payload_bytes_only_refuse_or_verify(ring: Keyring, payload: bytes) -> None:
    token = signed(ring.active.key, {"alg": "EdDSA", "kid": ring.kid}, payload)
    with pytest.raises(Refused) as refused:
        signing.verify(ring, token, what=WHAT, audience=AUD, issuer=ISS, require=REQUIRE)
    assert refused.value.reason in {"malformed", "forged", "expired"}
