"""Structured JSON logs on stderr, and the JSON access log with the request id."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

_encoder = msgspec.json.Encoder()
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


class RedactRefusedRequests(logging.Filter):
    """aiohttp logs a request its parser refused (a control byte in a header, a line too long,
    a bad URL) at ERROR with the raw bytes of the offending line, which may hold a bearer
    token, a queue ticket or a cookie. Keep one WARNING line naming the error class instead:
    the client's mistake, not ours, and no byte of what it sent."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        record.msg, record.args = "bad request refused by the HTTP parser", ()
        record.exc_info = record.exc_text = record.stack_info = None
        record.error = type(exc).__name__
        record.status = exc.code
        record.remote = remote if isinstance(remote, str) else None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_REDACT = RedactRefusedRequests()


def setup(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    server = logging.getLogger("aiohttp.server")  # web_protocol's handle_error logs there
    if _REDACT not in server.filters:
        server.addFilter(_REDACT)


class AccessLogger(AbstractAccessLogger):
    """``{"logger": "guichet.access", "request_id": …, "method": …, "status": …}`` per request."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "request",
            extra={
                "request_id": response.headers.get("X-Request-Id", ""),
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "duration_ms": round(time * 1000, 3),
                "remote": request.remote,
                "bytes": response.body_length,
            },
        )
