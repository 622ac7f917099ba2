"""JSON-lines logging to stderr (journald under systemd) and an optional file.

Every line is one JSON object with ``timestamp``, ``level``, ``logger``,
``message`` and, where known, ``event``, ``request_id`` and ``search_id``.
Secrets are removed from the finished line, whatever produced it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

__all__ = [
    "REDACTED",
    "JsonAccessLogger",
    "Redactor",
    "request_id_var",
    "search_id_var",
    "setup_logging",
]

REDACTED = "[REDACTED]"

# LogRecord attributes that are not extra fields (python-json-logger's list).
_RESERVED_ATTRS = frozenset(RESERVED_ATTRS) | {"message", "asctime"}

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
search_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("search_id", default=None)

# Shapes of credentials that must not reach a log even when leadd was not
# given the value: Google API keys, OpenAI-style keys, bearer tokens, and
# key=... query parameters in URLs that libraries log at debug level. Each
# pattern runs only when its lower-case marker occurs in the line, which
# keeps the common line (none of them) at a few substring checks.
_SECRET_PATTERNS = [
    (("aiza",), re.compile(r"AIza[0-9A-Za-z_\-]{20,}")),
    (("sk-",), re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}")),
    (("bearer",), re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}")),
    (("key=", "token=", "signature="), re.compile(r"(?i)([?&](?:key|api_key|token|signature)=)[^&\s\"']+")),
]

# journald reads a "<N>" prefix on stderr lines as the syslog priority and
# strips it, so `journalctl -p err` works and `-o cat` still shows pure JSON.
_SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class Redactor:
    """Replaces configured secret values and credential-shaped strings."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._literals: list[str] = []
        self.set_secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        literals: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            # The raw value plus the forms it takes inside JSON and URLs.
            literals.update({secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret)})
        # Longest first, so a secret that contains another is removed whole.
        self._literals = sorted(literals, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for literal in self._literals:
            if literal in text:
                text = text.replace(literal, REDACTED)
        lowered = text.lower()
        for markers, pattern in _SECRET_PATTERNS:
            for marker in markers:
                if marker in lowered:
                    text = pattern.sub(_keep_prefix, text)
                    break
        return text


def _keep_prefix(match: re.Match[str]) -> str:
    return (match.group(1) if match.groups() else "") + REDACTED


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in (("request_id", request_id_var), ("search_id", search_id_var)):
            if getattr(record, name, None) is None:
                value = var.get()
                if value is not None:
                    setattr(record, name, value)
        return True


class _Formatter(JsonFormatter):
    def __init__(self, redactor: Redactor, syslog_prefix: bool = False) -> None:
        super().__init__(["message"], json_ensure_ascii=False)
        self._redactor = redactor
        self._syslog_prefix = syslog_prefix

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        # The same fields as python-json-logger's add_fields, in one pass over
        # the record: this runs for every access line, so it is kept lean.
        log_data["timestamp"] = (
            datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
        log_data["level"] = record.levelname.lower()
        log_data["logger"] = record.name
        log_data["message"] = record.message
        for key, value in record.__dict__.items():
            if key not in _RESERVED_ATTRS and not key.startswith("_"):
                log_data[key] = value
        log_data.update(message_dict)
        if "event" not in log_data:
            log_data["event"] = _default_event(record)

    def format(self, record: logging.LogRecord) -> str:
        line = self._redactor(super().format(record))
        # A line must stay one line for journald and logrotate readers.
        line = line.replace("\n", "\\n")
        if self._syslog_prefix:
            return f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{line}"
        return line


def _default_event(record: logging.LogRecord) -> str:
    return record.name.replace(".", "_") + "_" + record.levelname.lower()


def _stderr_is_journal() -> bool:
    """Tell whether stderr is connected to journald (systemd sets JOURNAL_STREAM)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = stream.partition(":")
    if not inode:
        return False
    try:
        stat = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return f"{stat.st_dev}:{stat.st_ino}" == f"{device}:{inode}"


def setup_logging(level: str = "info", log_file: Path | None = None, secrets: Iterable[str] = ()) -> Redactor:
    """Install the JSON handlers on the root logger and return the redactor they share.

    The file handler is a WatchedFileHandler: when logrotate renames the file,
    the next line goes to a new file at the configured path, so the logrotate
    configuration needs neither copytruncate nor a signal.
    """
    redactor = Redactor(secrets)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()

    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(_Formatter(redactor, syslog_prefix=_stderr_is_journal()))
    stderr.addFilter(_ContextFilter())
    root.addHandler(stderr)

    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(_Formatter(redactor))
        file_handler.addFilter(_ContextFilter())
        root.addHandler(file_handler)

    root.setLevel(level.upper())
    # Libraries log at their own levels; keep their debug noise (which can
    # include request URLs) out unless leadd itself is at debug.
    # openai 3.x sends its requests through httpx2 and httpcore2.
    for noisy in ("urllib3", "asyncio", "aiosqlite", "openai", "httpx", "httpcore", "httpx2", "httpcore2"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
    logging.captureWarnings(True)
    return redactor


class JsonAccessLogger(AbstractAccessLogger):
    """One line per HTTP request, with the request id the middleware assigned."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %d",
            request.method,
            request.rel_url.path,
            response.status,
            extra={
                "event": "http_request",
                "request_id": request.get("request_id"),
                "method": request.method,
                "path": request.rel_url.path,
                "status": response.status,
                "duration_ms": round(time * 1000, 2),
                "bytes_sent": response.body_length,
                "remote": request.remote,
            },
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
