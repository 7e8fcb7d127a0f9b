from __future__ import annotations

from pathlib import Path

import pytest

from guichet import cli
from guichet.config import ConfigError, load_settings, masked


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "guichet.toml"
    path.write_text(text)
    return path


def test_defaults_use_embedded_redis(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), environ={})
    assert settings.redis.embedded
    assert settings.server.port == 8080


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
        ("", {"GUICHET_SERVER_WORKERS": "0"}, "server.workers: Expected `int` >= 1"),
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
