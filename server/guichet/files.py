"""Local secret files (keys made on first use): created atomically, mode 0600."""

from __future__ import annotations

import base64
import os
import re
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


def _decode_key(text: str, what: str, minimum: int, exact: bool) -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text) if re.fullmatch(r"[0-9a-fA-F]+", text) and len(text) % 2 == 0 \
            else base64.b64decode(text, validate=True)  # fmt: skip
    except ValueError:
        raise ValueError(f"{what} must be hex or base64") from None
    if (len(key) != minimum) if exact else (len(key) < minimum):
        size = f"{minimum} bytes" if exact else f"at least {minimum} bytes"
        raise ValueError(f"{what} must be {size}")
    return key


def secret_from_config_or_file(
    value: str | None, path: str, what: str, size: int, exact: bool
) -> bytes:
    """A key (hex or base64) from config, else from ``path`` (random, made on first use)."""
    if value is None:
        file = Path(path)
        if not file.exists():
            write_once(file, secrets.token_hex(32).encode())
        value = file.read_text()
    return _decode_key(value, what, size, exact)
