"""Finding the checkers of the deployment files: next to ``sys.executable`` (the venv's
``bin``: hadolint, check-jsonschema, kubectl come as wheels of the ``deploy`` extra) or on
the PATH (promtool, amtool: Debian packages that ``.ci/run`` installs). In CI (``CI=true``)
a missing checker fails the test instead of skipping it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str, install: str) -> str:
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is not None:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is missing in CI: {install}")
    pytest.skip(f"{name} not installed ({install})")


def run(args: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cwd)
