"""Member lists of restricted strata (issue 13, item 2): the file parser, fuzzed; the groups
claim; a spec's restricted strata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guichet import auth
from guichet.config import SecurityConfig
from guichet.draw import members
from guichet.draw.model import DrawSpec

_NOT_IN_IDS: list[Any] = ["Cc", "Cs", "Zl", "Zp", "Co", "Cn", "Zs"]
ids = st.text(st.characters(codec="utf-8", exclude_categories=_NOT_IN_IDS), min_size=1,
              max_size=40).filter(lambda s: not s.startswith("#") and s.isprintable())  # fmt: skip


@given(st.binary(max_size=400))
def test_any_bytes_are_a_list_or_a_refusal_naming_the_line(data: bytes) -> None:
    try:
        parsed = members.parse(data)
    except members.MemberListError as exc:
        refusal = str(exc)
        parsed = []
    else:
        refusal = "line "
    assert refusal.startswith("line ")
    assert len(parsed) == len(set(parsed))
    assert all(auth.printable(a) for a in parsed)


@given(st.lists(ids, max_size=30), st.sampled_from(["\n", "\r\n"]))
def test_a_written_list_reads_back_once_each_in_order(accounts: list[str], end: str) -> None:
    data = "# comment\n\n" + "".join(a + end for a in accounts + accounts)
    assert members.parse(data.encode()) == list(dict.fromkeys(accounts))


def test_a_bad_line_is_named() -> None:
    with pytest.raises(members.MemberListError, match="line 3"):
        members.parse(b"a\nb\nc\td\n")
    with pytest.raises(members.MemberListError, match="line 2: not UTF-8"):
        members.parse(b"a\n\xff\n")


@given(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.one_of(st.text(), st.integers(),
                                                                         st.none()))))  # fmt: skip
def test_the_groups_claim_grants_only_short_printable_names(value: object) -> None:
    groups = auth.groups_of(value)
    assert all(auth.printable(g, 64) for g in groups)
    assert len(groups) <= auth.MAX_GROUPS


def test_the_groups_claim_forms() -> None:
    assert auth.groups_of(["club", "press", 3, ""]) == {"club", "press"}
    assert auth.groups_of("club press") == {"club", "press"}
    assert auth.groups_of({"club": True}) == frozenset()


def _spec(**extra: object) -> DrawSpec:
    now = datetime.now(UTC)
    return DrawSpec(registration_opens_at=now, registration_closes_at=now + timedelta(days=1),
                    **extra)  # type: ignore[arg-type]  # fmt: skip


def test_restricted_defaults_to_every_stratum_but_the_default_in_priority_order() -> None:
    assert _spec(strata=["club", "press", "general"]).restricted == ["club", "press"]
    assert _spec(strata=["a", "b", "general"], restricted=["b", "a"]).restricted == ["a", "b"]
    assert _spec(strata=["club", "general"], restricted=[]).restricted == []
    with pytest.raises(ValueError, match="default_stratum"):
        _spec(strata=["club", "general"], restricted=["general"])
    with pytest.raises(ValueError, match="not in `strata`"):
        _spec(strata=["club", "general"], restricted=["press"])


def test_the_groups_claim_is_configurable(tmp_path: Path) -> None:
    key = auth.load_or_create_dev_key(tmp_path / "dev.pem")
    keys = {auth.public_jwk(key)["kid"]: key.public_key()}
    roles = auth.Verifier(SecurityConfig(dev_issuer=False, groups_claim="roles"), keys)
    plain = auth.Verifier(SecurityConfig(dev_issuer=False), keys)
    token = auth.mint(key, issuer="guichet-dev", audience="guichet", subject="a", ttl_s=60,
                      groups=["club"], groups_claim="roles")  # fmt: skip
    assert roles.account(token).groups == {"club"}
    assert plain.account(token).groups == frozenset()  # `groups` is not the claim it sent


def test_the_dev_token_command_can_put_an_account_in_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from guichet import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["token", "--account", "fan", "--group", "club", "--group", "press"]) == 0
    token = capsys.readouterr().out.strip()
    verifier = auth.Verifier.from_config(SecurityConfig())
    assert verifier.account(token).groups == {"club", "press"}
