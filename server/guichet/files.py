"""Local secret files (keys made on first use): created atomically, mode 0600."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_once(path: Path, data: bytes) -> None:
    """Create ``path`` atomically with mode 0600; if another process won the race, keep its."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
