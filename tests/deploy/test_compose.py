"""The compose stack (deploy/compose): valid against the Compose specification, every
bind-mounted path present, every Prometheus target a compose service, Prometheus's and
Alertmanager's configs accepted by promtool and amtool as mounted, Guichet's environment
accepted by Guichet's own settings loader. Images cannot be pulled here: nothing runs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml  # type: ignore[import-untyped]

from guichet.config import load_settings
from tests.deploy.binaries import ROOT, run, tool

COMPOSE_DIR = ROOT / "deploy/compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
CHECK_JSONSCHEMA = "pip install -e '.[deploy]' (check-jsonschema)"
PROMTOOL = "apt-get install -y prometheus (.ci/run does)"
AMTOOL = "apt-get install -y prometheus-alertmanager (.ci/run does)"

Service = dict[str, Any]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Service]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (COMPOSE_DIR / "env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$``."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":-":
            return arg or ""
        raise AssertionError(f"${{{name}}} unset: {arg}")

    value = re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)
    return value.replace("$$", "$")


def bind_mounts(service: Service) -> list[tuple[Path, str]]:
    """(host path, container path) of a service's bind mounts, host paths resolved."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((COMPOSE_DIR / volume["source"], volume["target"]))
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append(((COMPOSE_DIR / source).resolve(), target))
    return mounts


def flag(service: Service, name: str) -> str:
    (value,) = [arg.split("=", 1)[1] for arg in service["command"] if arg.startswith(name + "=")]
    return str(value)


def test_compose_file_passes_the_compose_specification_schema() -> None:
    checker = tool("check-jsonschema", CHECK_JSONSCHEMA)
    done = run([checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_refuses_a_bad_key(tmp_path: Path) -> None:
    checker = tool("check-jsonschema", CHECK_JSONSCHEMA)
    good = tmp_path / "good.yaml"
    bad = tmp_path / "bad.yaml"
    stack = yaml.safe_load(COMPOSE.read_text())
    good.write_text(yaml.safe_dump(stack))
    stack["services"]["guichet"]["restart_policy"] = "always"  # belongs under `deploy:`
    bad.write_text(yaml.safe_dump(stack))
    done = run([checker, "--builtin-schema", "vendor.compose-spec", str(good)])
    assert done.returncode == 0, done.stdout + done.stderr  # the copy itself is fine
    done = run([checker, "--builtin-schema", "vendor.compose-spec", str(bad)])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "restart_policy" in done.stdout


def test_every_bind_mounted_host_path_exists(services: dict[str, Service]) -> None:
    mounts = [(name, host) for name, s in services.items() for host, _ in bind_mounts(s)]
    assert len(mounts) >= 8
    for name, host in mounts:
        assert host.exists(), f"{name}: {host}"
    for name, service in services.items():
        if "build" in service:
            context = COMPOSE_DIR / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file(), name


def test_named_volumes_and_dependencies_exist(
    compose: dict[str, Any], services: dict[str, Service]
) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if not source.startswith((".", "/")):
                assert source in compose["volumes"], f"{name}: volume {source}"
        needs = service.get("depends_on", [])
        for other in needs:
            assert other in services, f"{name} depends on {other}"
            # a service of the default stack never waits for one of a profile
            if not service.get("profiles"):
                assert not services[other].get("profiles"), f"{name} -> {other}"


def test_every_image_is_pinned(services: dict[str, Service]) -> None:
    for name, service in services.items():
        image = service["image"]
        _, sep, tag = image.rpartition(":")
        assert sep, f"{name}: {image}"
        assert tag not in ("", "latest"), f"{name}: {image}"
        if "build" not in service:
            assert re.search(r"\d+\.\d+\.\d+", tag), f"{name}: {image}"


def test_valkey_keeps_an_aof_fsynced_every_second(services: dict[str, Service]) -> None:
    for name in ("valkey", "valkey-c1", "valkey-c2", "valkey-c3"):
        (conf,) = [host for host, target in bind_mounts(services[name]) if target.endswith(".conf")]
        lines = set(conf.read_text().splitlines())
        assert {"appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction"} <= lines
        assert any(target == "/data" for target in _named_targets(services[name]))
        assert "healthcheck" in services[name]
    cluster = {host for n in ("valkey-c1", "valkey-c2", "valkey-c3")
               for host, _ in bind_mounts(services[n])}  # fmt: skip
    (conf,) = cluster
    assert "cluster-enabled yes" in conf.read_text().splitlines()


def _named_targets(service: Service) -> list[str]:
    return [v.split(":")[1] for v in service["volumes"] if not v.startswith((".", "/"))]


def test_the_cluster_profile_creates_three_primaries_once(services: dict[str, Service]) -> None:
    job = services["valkey-cluster-init"]
    assert job["profiles"] == ["cluster"]
    script = job["command"][-1]
    assert "--cluster create" in script
    assert "--cluster-replicas 0" in script
    assert all(f"ip valkey-c{i}" in script for i in (1, 2, 3))
    assert "cluster_state:ok" in script  # a second `up` leaves the existing Cluster alone
    gate = services["guichet-cluster"]["depends_on"]["valkey-cluster-init"]
    assert gate == {"condition": "service_completed_successfully"}


def guichet_env(service: Service) -> dict[str, str]:
    example = env_example()
    return {k: interpolate(str(v), example) for k, v in service["environment"].items()}


def test_guichet_services_configure_guichet_by_environment(
    services: dict[str, Service], tmp_path: Path
) -> None:
    empty = tmp_path / "guichet.toml"
    empty.write_text("")
    stack = load_settings(empty, environ=guichet_env(services["guichet"]))
    assert stack.redis.url is not None
    assert urlsplit(stack.redis.url).hostname == "valkey"
    assert urlsplit(stack.redis.url).password == env_example()["VALKEY_PASSWORD"]
    cluster = load_settings(empty, environ=guichet_env(services["guichet-cluster"]))
    assert [host for host, _ in cluster.redis.cluster_nodes] == ["valkey-c1", "valkey-c2",
                                                                 "valkey-c3"]  # fmt: skip
    assert cluster.redis.cluster_auth == {"password": env_example()["VALKEY_PASSWORD"]}
    for name in ("guichet", "guichet-cluster"):
        command = [interpolate(str(arg), env_example()) for arg in services[name]["command"]]
        assert command[:2] == ["serve", "--workers"], command
        assert int(command[2]) >= 2, command
        assert services[name]["depends_on"]
        assert [v.split(":")[1] for v in services[name]["volumes"]] == ["/var/lib/guichet/.guichet"]


def prometheus_config(services: dict[str, Service]) -> dict[str, Any]:
    target = flag(services["prometheus"], "--config.file")
    (host,) = [h for h, t in bind_mounts(services["prometheus"]) if t == target]
    loaded = yaml.safe_load(host.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_every_prometheus_target_is_a_compose_service(services: dict[str, Service]) -> None:
    config = prometheus_config(services)
    hosts: dict[str, str] = {}
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                address = urlsplit(target).netloc if "://" in target else target
                hosts[address.rpartition(":")[0]] = job["job_name"]
        for relabel in job.get("relabel_configs", []):
            if relabel.get("target_label") == "__address__":
                hosts[relabel["replacement"].rpartition(":")[0]] = job["job_name"]
    for manager in config["alerting"]["alertmanagers"]:
        for static in manager["static_configs"]:
            hosts.update({t.rpartition(":")[0]: "alerting" for t in static["targets"]})
    hosts.pop("localhost")  # Prometheus itself
    for host, job in hosts.items():
        assert host in services, f"{job}: {host} is no compose service"
    scraped = set(hosts)
    for name in ("guichet", "guichet-cluster", "valkey-exporter", "valkey-c1", "alertmanager"):
        assert name in scraped, name
    assert [job["static_configs"][0]["targets"] for job in config["scrape_configs"]
            if job["job_name"] == "guichet"] == [["guichet:8080"]]  # fmt: skip  # GuichetDown


def mounted_layout(service: Service, tmp_path: Path) -> Path:
    """The service's bind mounts copied under ``tmp_path`` at their container paths."""
    for host, target in bind_mounts(service):
        place = tmp_path / target.lstrip("/")
        if host.is_dir():
            shutil.copytree(host, place)
        else:
            place.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(host, place)
    return tmp_path


def test_promtool_accepts_the_prometheus_config_as_mounted(
    services: dict[str, Service], tmp_path: Path
) -> None:
    promtool = tool("promtool", PROMTOOL)
    root = mounted_layout(services["prometheus"], tmp_path)
    config = root / flag(services["prometheus"], "--config.file").lstrip("/")
    done = run([promtool, "check", "config", str(config)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout  # alerts.yml found beside it
    assert re.search(r"SUCCESS: \d+ rules found", done.stdout), done.stdout


def test_amtool_accepts_the_alertmanager_config(
    services: dict[str, Service], tmp_path: Path
) -> None:
    amtool = tool("amtool", AMTOOL)
    root = mounted_layout(services["alertmanager"], tmp_path)
    config = root / flag(services["alertmanager"], "--config.file").lstrip("/")
    done = run([amtool, "check-config", str(config)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_amtool_refuses_a_route_to_an_unknown_receiver(tmp_path: Path) -> None:
    amtool = tool("amtool", AMTOOL)
    bad = tmp_path / "alertmanager.yml"
    bad.write_text("route:\n  receiver: nobody\nreceivers:\n  - name: ops-placeholder\n")
    done = run([amtool, "check-config", str(bad)])
    assert done.returncode != 0


def test_grafana_provisions_the_datasource_and_every_dashboard(
    services: dict[str, Service], tmp_path: Path
) -> None:
    grafana = services["grafana"]
    root = mounted_layout(grafana, tmp_path)
    provisioning = root / "etc/grafana/provisioning"
    (datasource,) = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["type"] == "prometheus"
    assert datasource["isDefault"] is True
    assert urlsplit(datasource["url"]).hostname in services
    (provider,) = yaml.safe_load((provisioning / "dashboards/guichet.yml").read_text())["providers"]
    folder = root / provider["options"]["path"].lstrip("/")
    mounted = sorted(p.relative_to(folder) for p in folder.rglob("*.json"))
    expected = sorted(p.relative_to(ROOT / "deploy/grafana")
                      for p in (ROOT / "deploy/grafana").rglob("*.json"))  # fmt: skip
    assert mounted, mounted
    assert mounted == expected
