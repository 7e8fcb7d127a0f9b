from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from guichet import cli
from guichet.config import ConfigError, load_settings, mask_url, masked


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "guichet.toml"
    path.write_text(text)
    return path


def test_defaults_use_embedded_redis(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), environ={})
    assert settings.redis.embedded
    assert settings.server.port == 8080
    assert settings.rooms.cookie_secure is True  # plain HTTP only when the config says so


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[server]\nport = 9000\nhost = "0.0.0.0"\n[redis]\nurl = "redis://r:6379/0"\n'
    )
    settings = load_settings(
        path,
        environ={"GUICHET_SERVER_PORT": "9100", "GUICHET_LOGGING_LEVEL": "DEBUG"},
        overrides={"server": {"workers": 3}},
    )
    assert (settings.server.host, settings.server.port, settings.server.workers) == (
        "0.0.0.0",
        9100,
        3,
    )
    assert settings.logging.level == "DEBUG"
    assert not settings.redis.embedded


def test_environment_lists_json_or_commas(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert load_settings(
        path, environ={"GUICHET_REDIS_CLUSTER_SEEDS": "a:1, b:2"}
    ).redis.cluster_seeds == ("a:1", "b:2")
    assert load_settings(
        path, environ={"GUICHET_REDIS_CLUSTER_SEEDS": '["c:3"]'}
    ).redis.cluster_seeds == ("c:3",)


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("[server]\nport = 70000\n", {}, "server.port: Expected `int` <= 65535"),
        ("[server]\nport = 'x'\n", {}, "server.port: Expected `int`, got `str`"),
        ("[server]\nprot = 1\n", {}, "unknown field `prot`"),
        ("[redis]\nurl = 'http://x'\n", {}, "scheme 'http' is not allowed"),
        (
            "[redis]\nurl = 'redis://x'\ncluster_seeds = ['a:1']\n",
            {},
            "either `url` or `cluster_seeds`",
        ),
        ("[redis]\ncluster_seeds = ['nohost']\n", {}, "must be host:port"),
        ("[logging]\nlevel = 'LOUD'\n", {}, "logging.level"),
        (
            "",
            {"GUICHET_SERVER_WORKERS": "0"},
            "GUICHET_SERVER_WORKERS (server.workers): expected an integer >= 1, got '0'",
        ),
        ("", {"GUICHET_NOPE_X": "1"}, "unknown section 'nope'"),
        ("", {"GUICHET_SERVER_PROT": "1"}, "unknown key server.prot"),
        ("server = 3\n", {}, "expected a [server] table"),
        ("[server\n", {}, "invalid TOML"),
    ],
)
def test_bad_values_name_the_key(
    tmp_path: Path, text: str, environ: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ=environ)
    assert expected in str(info.value)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_masked_hides_redis_password(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, "[redis]\nurl = 'redis://user:s3cret@h:6379/0'\n"), environ={}
    )
    shown = masked(settings)
    assert shown["redis"]["url"] == "redis://user:***@h:6379/0"
    assert "s3cret" not in repr(shown)


def test_cli_config_show_prints_effective_toml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "[redis]\nurl = 'redis://u:pw@h:1/0'\n")
    monkeypatch.setenv("GUICHET_SERVER_PORT", "9321")
    assert cli.main(["--config", str(path), "config", "show"]) == 0
    out = capsys.readouterr().out
    assert "port = 9321" in out
    assert "redis://u:***@h:1/0" in out
    assert "pw@" not in out


def test_cli_bad_config_exits_2_with_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[server]\nport = -1\n")
    assert cli.main(["--config", str(path), "version"]) == 2
    assert "server.port" in capsys.readouterr().err


SECRET = "s3cr#t/p?w"  # with the characters that break naive URL parsing
QUOTED = "s3cr%23t%2Fp%3Fw"
#: Every credential form of redis.url: (url, what `config show` must print).
CREDENTIAL_URLS = [
    (f"redis://user:{QUOTED}@h:6379/0", "redis://user:***@h:6379/0"),
    (f"redis://:{QUOTED}@h:6379/0", "redis://:***@h:6379/0"),
    (f"redis://user:{SECRET}@h:6379/0", "redis://user:***@h:6379/0"),
    (f"redis://{QUOTED}@h:6379/0", "redis://***@h:6379/0"),
    (f"redis://h:6379/0?password={QUOTED}", "redis://h:6379/0?password=***"),
    (f"redis://u@h/0?db=1&password={QUOTED}", "redis://***@h/0?db=1&password=***"),
    (f"unix:///run/valkey.sock?db=0&password={QUOTED}", "unix:///run/valkey.sock?db=0&password=***"),
    (f"unix://:{QUOTED}@/run/valkey.sock?db=0", "unix://:***@/run/valkey.sock?db=0"),
    (f"rediss://default:{QUOTED}@h:6380/0?ssl_cert_reqs=required",
     "rediss://default:***@h:6380/0?ssl_cert_reqs=required"),
    (f"rediss://h:6380/0?ssl_password={QUOTED}", "rediss://h:6380/0?ssl_password=***"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "shown"), CREDENTIAL_URLS)
def test_config_show_masks_every_credential_form(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    shown: str,
) -> None:
    monkeypatch.setenv("GUICHET_REDIS_URL", url)
    assert cli.main(["--config", str(write(tmp_path, "")), "config", "show"]) == 0
    out = capsys.readouterr().out
    assert f'url = "{shown}"' in out
    assert "s3cr" not in out


def test_masked_cluster_seeds_with_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUICHET_REDIS_CLUSTER_SEEDS", f"app:{SECRET}@a:7000,{SECRET}@b:7001,c:7002")
    path = write(tmp_path, "")
    assert cli.main(["--config", str(path), "config", "show"]) == 0
    out = capsys.readouterr().out
    assert 'cluster_seeds = [\n    "app:***@a:7000",\n    "***@b:7001",\n    "c:7002",\n]' in out
    assert "s3cr" not in out
    redis = load_settings(path).redis
    assert redis.cluster_nodes == [("a", 7000), ("b", 7001), ("c", 7002)]
    assert redis.cluster_auth == {"username": "app", "password": SECRET}


def test_bad_seed_message_does_not_echo_its_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, f"[redis]\ncluster_seeds = ['u:{SECRET}@nohost']\n"), {})
    assert "u:***@nohost" in str(info.value)
    assert "s3cr" not in str(info.value)


_PASSWORDS = st.text(st.characters(codec="utf-8", exclude_characters="@"), min_size=6)


@given(password=_PASSWORDS, form=st.sampled_from([
    "redis://user:{}@h:1/0", "redis://:{}@h/0", "redis://{}@h", "redis://h/0?password={}",
    "unix:///s.sock?db=0&password={}", "unix://:{}@/s.sock", "rediss://u:{}@h:2/0?x=1",
]))  # fmt: skip
def test_mask_url_never_shows_the_password(password: str, form: str) -> None:
    # In a query a password is percent-encoded (redis-py unquotes it), else '&' or '#' in it
    # would end it; in the userinfo it is taken as written.
    value = quote(password, safe="") if "password={}" in form else password
    assume(value not in form.replace("{}", ""))
    # Alone in the userinfo, "user:" + rest splits at the first ':' (user, then password):
    # only what follows it is the password there.
    assume(form != "redis://{}@h" or ":" not in value)
    assert value not in mask_url(form.format(value))


def test_sentinel_urls_are_refused_without_echoing_the_password(tmp_path: Path) -> None:
    """Sentinel is not supported: the URL is refused, and the message shows only its scheme."""
    text = f"[redis]\nurl = 'redis+sentinel://:{QUOTED}@h:26379/mymaster'\n"
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    assert "redis+sentinel" in str(info.value)
    assert "s3cr" not in str(info.value)
