"""The direct verification (auth_jws.py) against PyJWT's: same tokens accepted with the same
claims, same refusals with the same reasons and messages; the parser fuzzed; HS256 tokens."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from guichet import auth, auth_jws
from guichet.config import SecurityConfig

SECRET = b"a shared secret of thirty-two bytes or more"
ISS, AUD, ADMIN_AUD = "guichet-dev", "guichet", "guichet-admin"


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def verifier(key: Ed25519PrivateKey) -> auth.Verifier:
    return auth.Verifier(SecurityConfig(dev_issuer=False), {kid(key): key.public_key()})


@pytest.fixture(scope="module")
def hs_verifier(key: Ed25519PrivateKey) -> auth.Verifier:
    keys = {kid(key): key.public_key()}
    return auth.Verifier(SecurityConfig(dev_issuer=False), keys, hs256_secret=SECRET)


def kid(key: Ed25519PrivateKey) -> str:
    return str(auth.public_jwk(key)["kid"])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(
    key: Ed25519PrivateKey | bytes, header: dict[str, Any] | bytes, claims: dict[str, Any] | bytes
) -> str:
    """A compact JWS of exactly these header and payload bytes, Ed25519- or HMAC-signed."""
    raw = [p if isinstance(p, bytes) else json.dumps(p).encode() for p in (header, claims)]
    signing_input = f"{b64(raw[0])}.{b64(raw[1])}".encode()
    if isinstance(key, bytes):
        signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    else:
        signature = key.sign(signing_input)
    return f"{signing_input.decode()}.{b64(signature)}"


def claims(**kw: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {"iss": ISS, "aud": AUD, "sub": "acc-1", "iat": now, "exp": now + 600}
    out.update(kw)
    return {k: v for k, v in out.items() if v is not ...}


def outcome(verifier: auth.Verifier, token: str, audience: str, pyjwt: bool) -> tuple[Any, ...]:
    decode = verifier._decode_pyjwt if pyjwt else verifier._decode
    try:
        return ("ok", decode(token, audience))
    except auth.Refused as exc:
        return ("refused", exc.reason, exc.detail)


def same(verifier: auth.Verifier, token: str, audience: str = AUD) -> tuple[Any, ...]:
    """The outcome of the direct path, asserted equal to PyJWT's."""
    direct = outcome(verifier, token, audience, pyjwt=False)
    assert direct == outcome(verifier, token, audience, pyjwt=True), token
    return direct


def header(key: Ed25519PrivateKey, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"alg": "EdDSA", "typ": "JWT", "kid": kid(key)}
    out.update(kw)
    return {k: v for k, v in out.items() if v is not ...}


HOUR = 3600


@pytest.mark.parametrize(
    ("claim_changes", "reason"),
    [
        ({}, None),
        ({"exp": int(time.time()) - HOUR, "iat": int(time.time()) - 2 * HOUR}, "expired"),
        ({"nbf": int(time.time()) + HOUR}, "not_yet_valid"),
        ({"iat": int(time.time()) + HOUR, "exp": int(time.time()) + 2 * HOUR}, "not_yet_valid"),
        ({"aud": "other-site"}, "wrong_audience"),
        ({"aud": ["other", AUD]}, None),
        ({"aud": ["other", 7]}, "wrong_audience"),
        ({"aud": {"a": AUD}}, "wrong_audience"),
        ({"aud": []}, "malformed"),
        ({"iss": "evil"}, "wrong_issuer"),
        ({"iss": ["guichet-dev"]}, "wrong_issuer"),
        ({"sub": ...}, "malformed"),
        ({"sub": None}, "malformed"),
        ({"sub": 7}, "malformed"),
        ({"exp": ...}, "malformed"),
        ({"exp": "soon"}, "malformed"),
        ({"exp": str(int(time.time()) + 6 * HOUR)}, None),  # PyJWT's int("…"): the date is read
        ({"exp": True}, "expired"),
        ({"exp": int(time.time()) + 6 * HOUR + 0.9}, None),  # params are made at collection
        ({"exp": 10**400}, None),  # a huge int: Python's int
        ({"iat": [1]}, "malformed"),
        ({"nbf": "x"}, "malformed"),
        ({"jti": 7}, "malformed"),
    ],
)
def test_every_claim_refusal_matches_pyjwt(
    verifier: auth.Verifier, key: Ed25519PrivateKey, claim_changes: dict[str, Any], reason: str
) -> None:
    result = same(verifier, signed(key, header(key), claims(**claim_changes)))
    assert result[0] == "ok" if reason is None else result[1] == reason, result


@pytest.mark.parametrize(
    ("header_changes", "reason"),
    [
        ({"alg": "none"}, "bad_algorithm"),
        ({"alg": ...}, "bad_algorithm"),
        ({"alg": None}, "bad_algorithm"),
        ({"alg": 7}, "bad_algorithm"),
        ({"alg": ["EdDSA"]}, "bad_algorithm"),
        ({"alg": "RS256"}, "bad_algorithm"),
        ({"alg": "HS256"}, "bad_algorithm"),  # not configured
        ({"kid": 7}, "malformed"),
        ({"kid": None}, "malformed"),
        ({"kid": "unknown"}, None),  # an unknown kid: every key is tried
        ({"kid": ...}, None),
        ({"typ": 7, "extra": {"a": [1]}}, None),
        ({"crit": ["exp"]}, "malformed"),
        ({"crit": []}, "malformed"),
        ({"crit": "b64"}, "malformed"),
        ({"b64": False, "crit": ["b64"]}, "malformed"),
    ],
)
def test_every_header_refusal_matches_pyjwt(
    verifier: auth.Verifier, key: Ed25519PrivateKey, header_changes: dict[str, Any], reason: str
) -> None:
    result = same(verifier, signed(key, header(key, **header_changes), claims()))
    assert result[0] == "ok" if reason is None else result[1] == reason, result


def test_crit_is_refused_even_where_pyjwt_accepts_it(
    verifier: auth.Verifier, key: Ed25519PrivateKey
) -> None:
    """``crit: ["b64"]`` with ``b64: true`` passes PyJWT; we implement no extension."""
    token = signed(key, header(key, crit=["b64"], b64=True), claims())
    assert outcome(verifier, token, AUD, pyjwt=True)[0] == "ok"
    assert outcome(verifier, token, AUD, pyjwt=False)[1:] == ("malformed", auth_jws.NOT_A_JWT)


def test_other_key_unknown_kid_and_tampering_are_bad_signature(
    verifier: auth.Verifier, key: Ed25519PrivateKey
) -> None:
    other = Ed25519PrivateKey.generate()
    assert same(verifier, signed(other, header(other), claims()))[1] == "bad_signature"
    assert same(verifier, signed(other, header(key), claims()))[1] == "bad_signature"
    h, p, s = signed(key, header(key), claims()).split(".")
    forged = b64(json.dumps(claims(sub="someone-else")).encode())
    assert same(verifier, f"{h}.{forged}.{s}")[1] == "bad_signature"
    assert same(verifier, f"{h}.{p}.")[1] == "bad_signature"  # no signature
    short = b64(base64.urlsafe_b64decode(s + "==")[:60])
    assert same(verifier, f"{h}.{p}.{short}")[1] == "bad_signature"  # a short one


def test_alg_confusion_is_refused(verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    """HS256 signed with the public key's bytes (PEM or raw) is not an accepted token."""
    public = key.public_key()
    for secret in (
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        public.public_bytes_raw(),
    ):
        token = signed(secret, {"alg": "HS256", "typ": "JWT"}, claims())
        assert same(verifier, token)[1] == "bad_algorithm"


def test_odd_json_is_malformed(verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    now = int(time.time())
    good = json.dumps(claims()).encode()
    for head, body in [
        (b"[1]", good),  # a header that is not an object
        (b'{"alg":"EdDSA"', good),  # not JSON
        (b"\xff\xfe", good),
        (json.dumps(header(key)).encode(), b"[]"),  # a payload that is not an object
        (json.dumps(header(key)).encode(), b"{"),
        (json.dumps(header(key)).encode(), b"[" * 5000 + b"]" * 5000),
    ]:
        result = same(verifier, signed(key, head, body))
        assert result[1] == "malformed", (head, body)
    # Duplicate members: the last one counts, in both (as json.loads does).
    dup_header = b'{"alg":"none","alg":"EdDSA"}'
    dup_claims = good[:-1] + f', "sub": "acc-2", "exp": {now + 60}}}'.encode()
    result = same(verifier, signed(key, dup_header, dup_claims))
    assert result[0] == "ok"
    assert result[1]["sub"] == "acc-2"
    result = same(verifier, signed(key, b'{"alg":"EdDSA","alg":"none"}', good))
    assert result[1] == "bad_algorithm"


def test_non_rfc_json_is_refused_where_pyjwt_reads_it(
    verifier: auth.Verifier, key: Ed25519PrivateKey
) -> None:
    """NaN, Infinity and UTF-16 payloads are JSON to Python's json module, not to RFC 8259."""
    good = json.dumps(claims())
    for body in (
        good[:-1].encode() + b', "x": NaN}',
        good[:-1].encode() + b', "x": 1e400}',
        good.encode("utf-16"),
    ):
        token = signed(key, header(key), body)
        assert outcome(verifier, token, AUD, pyjwt=True)[0] == "ok"
        assert outcome(verifier, token, AUD, pyjwt=False)[1:] == (
            "malformed",
            "token could not be decoded",
        )


def test_non_canonical_base64_and_huge_tokens_are_malformed(
    verifier: auth.Verifier, key: Ed25519PrivateKey
) -> None:
    token = signed(key, header(key), claims())
    h, p, s = token.split(".")
    # 64 signature bytes end on a character with 4 unused (zero) bits: set one.
    bumped = B64URL[B64URL.index(s[-1]) + 1]
    assert same(verifier, f"{h}.{p}.{s[:-1]}{bumped}")[1:] == ("malformed", auth_jws.NOT_A_JWT)
    assert same(verifier, f"{h}.{p}.{s}AAA")[1] == "malformed"  # length 4k+1
    assert same(verifier, f"{h}.{p}.{s}==")[1] == "malformed"
    huge = signed(key, header(key), claims(pad="x" * 9000))
    assert same(verifier, huge)[1:] == ("malformed", auth_jws.NOT_A_JWT)


def test_admin_tokens_take_the_same_path(verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    token = signed(key, header(key), claims(aud=ADMIN_AUD, scope="ops:read"))
    assert same(verifier, token, ADMIN_AUD)[0] == "ok"
    assert same(verifier, token, AUD)[1] == "wrong_audience"
    assert verifier.admin(token, "ops:read").scopes == {"ops:read"}


# -- HS256 account tokens ------------------------------------------------------------------


def test_hs256_account_token(hs_verifier: auth.Verifier, verifier: auth.Verifier) -> None:
    token = auth.mint_hs256(SECRET, issuer=ISS, audience=AUD, subject="acc-9", ttl_s=600)
    assert same(hs_verifier, token)[0] == "ok"
    assert hs_verifier.account(token).id == "acc-9"
    assert same(verifier, token)[1] == "bad_algorithm"  # not configured: refused


def test_hs256_refusals(hs_verifier: auth.Verifier, key: Ed25519PrivateKey) -> None:
    hs = {"alg": "HS256", "typ": "JWT"}
    # Admin tokens stay asymmetric: a correctly HMAC'd admin token is refused.
    admin = signed(SECRET, hs, claims(aud=ADMIN_AUD, scope="ops:read"))
    assert same(hs_verifier, admin, ADMIN_AUD)[1] == "bad_algorithm"
    # Another secret, or the public key as the secret: the signature does not verify.
    for secret in (b"another secret of thirty-two bytes!!", key.public_key().public_bytes_raw()):
        assert same(hs_verifier, signed(secret, hs, claims()))[1] == "bad_signature"
    # An EdDSA-headed token carrying an HMAC made with the shared secret is no Ed25519 one.
    assert same(hs_verifier, signed(SECRET, header(key), claims()))[1] == "bad_signature"
    assert same(hs_verifier, signed(SECRET, hs, claims(iss="evil")))[1] == "wrong_issuer"
    expired = claims(exp=int(time.time()) - HOUR, iat=int(time.time()) - 2 * HOUR)
    assert same(hs_verifier, signed(SECRET, hs, expired))[1] == "expired"
    # The asymmetric keys still verify their tokens.
    assert same(hs_verifier, signed(key, header(key), claims()))[0] == "ok"


def test_hs256_secret_shorter_than_32_bytes_is_refused_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(msgspec.ValidationError, match="at least 32 bytes"):
        msgspec.convert({"account_hs256_secret": "x" * 31}, SecurityConfig)
    short = tmp_path / "hs"
    short.write_text("y" * 31 + "\n")
    cfg = SecurityConfig(account_hs256_secret_file=str(short))
    with pytest.raises(ValueError, match="at least 32 bytes"):
        auth.hs256_secret(cfg)
    short.write_text("y" * 32 + "\n")
    assert auth.hs256_secret(cfg) == b"y" * 32
    assert auth.hs256_secret(SecurityConfig()) is None


# -- fuzzing and the differential property --------------------------------------------------

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary().map(lambda b: b.decode("utf-8", "surrogateescape")),
                 st.lists(st.text(B64URL), min_size=1, max_size=4).map(".".join)))  # fmt: skip
def test_parser_only_refuses(text: str) -> None:
    """Arbitrary strings: a ``malformed`` refusal, or a parse whose claims check only refuses."""
    try:
        jws = auth_jws.parse(text)
    except auth_jws.Refused as exc:
        reason = exc.reason
    else:
        with contextlib.suppress(auth_jws.Refused):
            auth_jws.check_claims(auth_jws.claims_of(jws), audience=AUD, issuer=ISS, leeway=30,
                                  now=time.time())  # fmt: skip
        return
    assert reason == "malformed"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
NOW = int(time.time())
DATES = st.sampled_from([NOW - 10 * HOUR, NOW - 40, NOW - 20, NOW, NOW + 20, NOW + 40, NOW + HOUR])


def claim_values(name: str, good: Any) -> st.SearchStrategy[Any]:
    if name in ("exp", "iat", "nbf"):
        return st.one_of(DATES, DATES.map(float), DATES.map(str), JSON, st.just(...))
    return st.one_of(st.just(good), JSON, st.just(...), st.sampled_from(["evil", "", [good]]))


GOOD = {"iss": ISS, "aud": AUD, "sub": "acc-1", "iat": NOW, "exp": NOW + 600, "nbf": NOW,
        "jti": "j"}  # fmt: skip
#: Valid claims with up to three of them changed (to another date, type, value, or removed).
CLAIMS = (
    st.lists(st.sampled_from(sorted(GOOD)), max_size=3, unique=True)
    .flatmap(lambda names: st.fixed_dictionaries({n: claim_values(n, GOOD[n]) for n in names}))
    .map(lambda changed: {k: v for k, v in {**GOOD, **changed}.items() if v is not ...})
)
HEADERS = st.fixed_dictionaries(
    {"alg": st.sampled_from(["EdDSA"] * 4 + ["HS256"] * 2 + ["none", "RS256", None, 1, ...]),
     "kid": st.sampled_from(["KID", "KID", "KID", "other", 7, None, ...]),
     "typ": st.sampled_from(["JWT", 1, ...]),
     "b64": st.sampled_from([...] * 6 + [True, False])},
).map(lambda h: {k: v for k, v in h.items() if v is not ...})  # fmt: skip


def mutate(token: str, data: st.DataObject) -> str:
    kind = data.draw(st.sampled_from(["none", "none", "replace", "insert", "delete", "truncate"]))
    if kind == "none" or not token:
        return token
    i = data.draw(st.integers(0, len(token) - 1))
    c = data.draw(st.sampled_from(B64URL + ".=é \x00"))
    if kind == "replace":
        return token[:i] + c + token[i + 1 :]
    if kind == "insert":
        return token[:i] + c + token[i:]
    if kind == "delete":
        return token[:i] + token[i + 1 :]
    return token[:i]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header_=HEADERS, claims_=CLAIMS, hmac_signed=st.booleans(), data=st.data())
def test_direct_path_accepts_exactly_what_pyjwt_accepts(
    hs_verifier: auth.Verifier,
    key: Ed25519PrivateKey,
    header_: dict[str, Any],
    claims_: dict[str, Any],
    hmac_signed: bool,
    data: st.DataObject,
) -> None:
    """Generated headers and claims, validly signed, then mutated (or not): the direct path
    and PyJWT's give the same claims or the same refusal (reason and message)."""
    if header_.get("kid") == "KID":
        header_["kid"] = kid(key)
    assume(all(abs(v) < 2**53 for v in claims_.values() if isinstance(v, float)))
    token = mutate(signed(SECRET if hmac_signed else key, header_, claims_), data)
    audience = data.draw(st.sampled_from([AUD, AUD, ADMIN_AUD]))
    result = same(hs_verifier, token, audience)
    event(f"{result[0]} {'' if result[0] == 'ok' else result[1]}")


def test_the_token_command_mints_hs256_account_tokens_when_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from guichet import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["token", "--hs256", "--account", "fan"]) != 0
    assert "account_hs256_secret" in capsys.readouterr().err
    (tmp_path / "hs").write_bytes(SECRET + b"\n")
    monkeypatch.setenv("GUICHET_SECURITY_ACCOUNT_HS256_SECRET_FILE", str(tmp_path / "hs"))
    assert cli.main(["token", "--hs256", "--account", "fan"]) == 0
    token = capsys.readouterr().out.strip()
    assert auth_jws.parse(token).header.alg == "HS256"
    verifier = auth.Verifier.from_config(
        SecurityConfig(account_hs256_secret_file=str(tmp_path / "hs"))
    )
    assert verifier.account(token).id == "fan"
    assert cli.main(["token", "--hs256", "--admin", "--scope", "ops:read"]) != 0
    assert "account tokens only" in capsys.readouterr().err


def test_invalid_utf8_inside_json_strings_is_malformed(
    verifier: auth.Verifier, key: Ed25519PrivateKey
) -> None:
    """msgspec reads bytes inside a string unchecked: the parser checks UTF-8 first."""
    good = json.dumps(claims()).encode()
    assert same(verifier, signed(key, b'{"alg": "EdDSA", "a\xa7": 1}', good))[1] == "malformed"
    assert (
        same(verifier, signed(key, b'{"a\xa7": "EdDSA", "alg": "EdDSA"}', good))[1] == "malformed"
    )
    body = good[:-1] + b', "x\xa7": 1}'
    assert same(verifier, signed(key, header(key), body))[1] == "malformed"


def test_hs256_never_verifies_an_admin_token_even_with_one_audience(
    key: Ed25519PrivateKey,
) -> None:
    """An operator who sets ``admin_audience`` to the account ``audience`` must not turn the
    shared secret into a way to mint admin tokens."""
    one = SecurityConfig(dev_issuer=False, audience=AUD, admin_audience=AUD)
    same_audiences = auth.Verifier(one, {kid(key): key.public_key()}, hs256_secret=SECRET)
    admin = auth.mint_hs256(SECRET, issuer=ISS, audience=AUD, subject="ops", ttl_s=600)
    with pytest.raises(auth.Refused) as refused:
        same_audiences.admin(admin, "ops:read")
    assert refused.value.reason == "bad_algorithm"
