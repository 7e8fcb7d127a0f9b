"""The Kubernetes manifests (deploy/k8s): ``kubectl kustomize`` builds the base and each
overlay; every built-in kind passes ``kubernetes-validate --strict``; the Prometheus Operator
kinds get structural checks; the pods meet the Pod Security Standard "restricted"; the probes
hit paths the service serves. kubectl and kubernetes-validate come with the ``deploy`` extra
(the venv's bin, next to ``sys.executable``, or the PATH); in CI (``CI=true``) a missing tool
fails instead of skipping."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from guichet.config import ConfigError, load_settings
from tests.conftest import Client

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/k8s"
BUILDS = ("base", "overlays/small", "overlays/sale-day")
#: The oldest Kubernetes the manifests claim (deploy/k8s/README.md) and the newest schemas.
VERSIONS = ("1.30.0", "1.37.0")
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
POD_OWNERS = {"Deployment", "StatefulSet", "Job"}

Doc = dict[str, Any]


def missing(what: str, how: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing in CI: {how}")
    pytest.skip(f"{what} not installed ({how})")


def tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        missing(name, "pip install -e '.[deploy]'")
        raise AssertionError  # unreachable: missing() fails or skips
    return found


def validator() -> ModuleType:
    try:
        return importlib.import_module("kubernetes_validate")
    except ImportError:
        missing("kubernetes-validate", "pip install -e '.[deploy]'")
        raise


@cache
def built(build: str) -> tuple[Doc, ...]:
    done = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / build)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def one(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in found])
    return found[0]


def guichet_container(docs: tuple[Doc, ...]) -> Doc:
    spec = one(docs, "Deployment", "guichet")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert isinstance(container, dict)
    return container


def config_map(docs: tuple[Doc, ...], name: str) -> dict[str, str]:
    data = one(docs, "ConfigMap", name)["data"]
    assert isinstance(data, dict)
    return data


def validate(doc: Doc, version: str) -> None:
    validator().validate(doc, version, strict=True)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("version", VERSIONS)
def test_every_built_in_kind_passes_the_kubernetes_schemas_strictly(
    build: str, version: str
) -> None:
    docs = built(build)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    assert {"ConfigMap", "Secret", "StatefulSet", "Job", "NetworkPolicy"} <= kinds
    assert kinds >= CRD_KINDS
    for doc in docs:
        if doc["kind"] not in CRD_KINDS:
            validate(doc, version)


def test_the_validator_rejects_a_broken_manifest() -> None:
    """The check above can fail: a misspelt field and a wrong type are refused."""
    module = validator()
    deployment = one(built("base"), "Deployment", "guichet")
    validate(deployment, VERSIONS[-1])
    misspelt = yaml.safe_load(yaml.safe_dump(deployment))
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(module.ValidationError, match="readinessProbes"):
        validate(misspelt, VERSIONS[-1])
    wrong_type = yaml.safe_load(yaml.safe_dump(deployment))
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(module.ValidationError):
        validate(wrong_type, VERSIONS[-1])


def test_the_prometheus_rule_is_the_generators_output_of_alerts_yml() -> None:
    done = subprocess.run(
        [sys.executable, str(K8S / "gen_prometheusrule.py"), "--stdout"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    committed = (K8S / "base/prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == done.stdout, "run: python deploy/k8s/gen_prometheusrule.py"


@pytest.mark.parametrize("build", BUILDS)
def test_the_operator_kinds_are_well_formed_and_match_the_service(build: str) -> None:
    docs = built(build)
    rule = one(docs, "PrometheusRule", "guichet")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
    for group in rule["spec"]["groups"]:
        assert group["name"]
        assert group["rules"]
        for r in group["rules"]:
            assert ("alert" in r) != ("record" in r), r
            assert isinstance(r["expr"], str)
            assert r["expr"].strip()

    monitor = one(docs, "ServiceMonitor", "guichet")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = one(docs, "Service", "guichet")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # The alert rules select job="guichet": the job label is the Service's name label.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "guichet"


@pytest.mark.parametrize("build", BUILDS)
def test_the_service_routes_to_the_deployments_named_port(build: str) -> None:
    docs = built(build)
    deployment = one(docs, "Deployment", "guichet")
    service = one(docs, "Service", "guichet")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    ports = {p["name"]: p["containerPort"] for p in guichet_container(docs)["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports
    for kind in ("HorizontalPodAutoscaler",):
        target = one(docs, kind, "guichet")["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", "guichet")
    pdb = one(docs, "PodDisruptionBudget", "guichet")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def service_links(docs: Sequence[Doc]) -> dict[str, str]:
    """The variables Kubernetes gives a pod for every Service of its namespace (service
    links: ``GUICHET_SERVICE_HOST``, ``GUICHET_PORT_8080_TCP``, ...)."""
    env: dict[str, str] = {}
    for doc in docs:
        if doc["kind"] != "Service":
            continue
        name = doc["metadata"]["name"].upper().replace("-", "_")
        env[f"{name}_SERVICE_HOST"] = "10.0.0.1"
        for port in doc["spec"]["ports"]:
            number, proto = port["port"], port.get("protocol", "TCP")
            env[f"{name}_SERVICE_PORT"] = str(number)
            env[f"{name}_PORT"] = f"{proto.lower()}://10.0.0.1:{number}"
            env[f"{name}_PORT_{number}_{proto}"] = f"{proto.lower()}://10.0.0.1:{number}"
    return env


def test_service_links_would_stop_guichet(tmp_path: Path) -> None:
    """Why the pod turns service links off: the `guichet` Service's variables are unknown
    GUICHET_* settings, and Guichet refuses to start on them."""
    docs = built("base")
    toml = tmp_path / "guichet.toml"
    toml.write_text(config_map(docs, "guichet-config")["guichet.toml"])
    assert "GUICHET_SERVICE_HOST" in service_links(docs)
    with pytest.raises(ConfigError, match="GUICHET_"):
        load_settings(toml, environ=service_links(docs))


@pytest.mark.parametrize("build", BUILDS)
def test_the_configmaps_guichet_toml_is_a_valid_configuration(build: str, tmp_path: Path) -> None:
    docs = built(build)
    data = config_map(docs, "guichet-config")
    toml = tmp_path / "guichet.toml"
    toml.write_text(data["guichet.toml"])
    environ = {"GUICHET_SERVER_WORKERS": data["workers"]}
    pod = one(docs, "Deployment", "guichet")["spec"]["template"]["spec"]
    if pod.get("enableServiceLinks", True):
        environ |= service_links(docs)
    settings = load_settings(toml, environ=environ)
    container = guichet_container(docs)
    assert container["args"] == ["--config", "/etc/guichet/guichet.toml", "serve"]
    (port,) = container["ports"]
    assert port["containerPort"] == settings.server.port
    assert settings.server.host == "0.0.0.0"
    assert not settings.redis.embedded
    assert not settings.security.dev_issuer
    # Workers get a CPU each: the request matches server.workers.
    assert float(container["resources"]["requests"]["cpu"]) == settings.server.workers
    # preStop pause + the drain on SIGTERM fit in the grace period.
    pod = one(docs, "Deployment", "guichet")["spec"]["template"]["spec"]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] >= pause + settings.server.shutdown_timeout_s + 5
    # Every secret and key the settings read is a file of a mounted Secret (the pods'
    # root file system is read-only; nothing may be made on first use).
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    files = [
        settings.rooms.ticket_secret_file,
        settings.draws.seal_key_file,
        settings.programme.pseudonym_secret_file,
        settings.programme.name_key_file,
        settings.audit.digest_secret_file,
    ]
    for file in files:
        assert str(Path(file).parent) in mounts, file
        secret = one(docs, "Secret", "guichet-secrets")
        assert Path(file).name in secret["data"], file
    for keyring in (
        settings.rooms.signing_key_dir,
        settings.draws.signing_key_dir,
        settings.etickets.signing_key_dir,
        settings.audit.signing_key_dir,
    ):
        assert keyring in mounts, keyring
    assert settings.security.jwks_file is not None
    assert str(Path(settings.security.jwks_file).parent) in mounts


def test_the_cluster_seeds_name_the_statefulsets_pods() -> None:
    for build in BUILDS:
        docs = built(build)
        data = tomllib.loads(config_map(docs, "guichet-config")["guichet.toml"])
        valkey = one(docs, "StatefulSet", "valkey")
        headless = valkey["spec"]["serviceName"]
        one(docs, "Service", headless)
        pods = {f"valkey-{i}.{headless}:6379" for i in range(valkey["spec"]["replicas"])}
        assert set(data["redis"]["cluster_seeds"]) <= pods
        job = one(docs, "Job", "valkey-cluster-create")["spec"]["template"]["spec"]
        env = {e["name"]: e["value"] for e in job["containers"][0]["env"]}
        replicas = int(env["VALKEY_CLUSTER_REPLICAS"])
        assert int(env["VALKEY_NODES"]) == valkey["spec"]["replicas"]
        assert valkey["spec"]["replicas"] == 3 * (1 + replicas)  # 3 primaries
        conf = config_map(docs, "valkey-config")["valkey.conf"]
        for line in ("appendonly yes", "cluster-enabled yes", "maxmemory-policy noeviction"):
            assert line in conf.splitlines(), line
        (claim,) = valkey["spec"]["volumeClaimTemplates"]
        mounts = {
            m["name"]: m["mountPath"]
            for m in valkey["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
        }
        assert mounts[claim["metadata"]["name"]] == "/data"


def restricted_violations(pod: Doc) -> list[str]:
    """What breaks the Pod Security Standard "restricted" (plus a read-only root), in a pod
    spec: the pod's and each container's effective security context."""
    bad: list[str] = []
    pod_sc = pod.get("securityContext", {})
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        bad.append("host namespaces")
    for volume in pod.get("volumes", []):
        if "hostPath" in volume:
            bad.append(f"hostPath volume {volume['name']}")
    for c in pod.get("initContainers", []) + pod["containers"]:
        sc = c.get("securityContext", {})
        name = c["name"]

        def effective(key: str, sc: Doc = sc) -> Any:
            return sc.get(key, pod_sc.get(key))

        if effective("runAsNonRoot") is not True:
            bad.append(f"{name}: runAsNonRoot")
        user = effective("runAsUser")
        if not isinstance(user, int) or user == 0:
            bad.append(f"{name}: numeric non-zero runAsUser")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation")
        if sc.get("privileged"):
            bad.append(f"{name}: privileged")
        caps = sc.get("capabilities", {})
        if caps.get("drop") != ["ALL"] or set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: capabilities")
        if (effective("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: seccompProfile")
        if sc.get("readOnlyRootFilesystem") is not True:
            bad.append(f"{name}: readOnlyRootFilesystem")
        if "limits" not in c.get("resources", {}) or "requests" not in c["resources"]:
            bad.append(f"{name}: resources")
    return bad


@pytest.mark.parametrize("build", BUILDS)
def test_every_pod_meets_the_restricted_pod_security_standard(build: str) -> None:
    pods = 0
    for doc in built(build):
        if doc["kind"] in POD_OWNERS:
            pods += 1
            pod = doc["spec"]["template"]["spec"]
            assert restricted_violations(pod) == [], doc["metadata"]["name"]
            assert pod.get("automountServiceAccountToken") is False
    assert pods == 3


def test_the_restricted_check_catches_a_weakened_pod() -> None:
    pod = one(built("base"), "Deployment", "guichet")["spec"]["template"]["spec"]
    weak = yaml.safe_load(yaml.safe_dump(pod))
    sc = weak["containers"][0]["securityContext"]
    sc["allowPrivilegeEscalation"] = True
    del sc["runAsNonRoot"]
    del weak["securityContext"]["runAsNonRoot"]
    sc["capabilities"] = {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    assert restricted_violations(weak) == [
        "guichet: runAsNonRoot",
        "guichet: allowPrivilegeEscalation",
        "guichet: capabilities",
    ]


def test_the_guichet_pod_writes_only_to_its_empty_dirs() -> None:
    container = guichet_container(built("base"))
    pod = one(built("base"), "Deployment", "guichet")["spec"]["template"]["spec"]
    empty = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    by_name = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert writable == {by_name[name] for name in empty} == {"/var/lib/guichet", "/tmp"}
    assert container["workingDir"] == "/var/lib/guichet"  # .guichet lands there


def test_the_overlays_size_the_service() -> None:
    def sizes(build: str) -> tuple[int, int, int, str]:
        docs = built(build)
        hpa = one(docs, "HorizontalPodAutoscaler", "guichet")["spec"]
        assert hpa["metrics"][0]["resource"]["name"] == "cpu"
        # The autoscaler owns the count: a `replicas` would reset it at every apply.
        assert "replicas" not in one(docs, "Deployment", "guichet")["spec"]
        workers = config_map(docs, "guichet-config")["workers"]
        return hpa["minReplicas"], hpa["minReplicas"], hpa["maxReplicas"], workers

    assert sizes("overlays/small") == (1, 1, 2, "1")
    small, sale = sizes("overlays/small"), sizes("overlays/sale-day")
    assert sale[0] > small[0]
    assert sale[2] > small[2]
    assert int(sale[3]) > int(small[3])
    for build in BUILDS:
        for doc in built(build):
            if doc["kind"] in POD_OWNERS:
                for c in doc["spec"]["template"]["spec"]["containers"]:
                    assert "/" in c["image"], c["image"]  # kustomize `images:` applied
                    assert ":" in c["image"], c["image"]


async def test_the_probes_hit_paths_the_service_serves(client: Client) -> None:
    container = guichet_container(built("base"))
    paths = {
        probe: container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert paths == {
        "startupProbe": "/healthz",
        "readinessProbe": "/readyz",
        "livenessProbe": "/healthz",
    }
    for probe in container.values():
        if isinstance(probe, dict) and "httpGet" in probe:
            assert probe["httpGet"]["port"] == "http"
    for path in set(paths.values()):
        response = await client.get(path)
        assert response.status == 200, path
