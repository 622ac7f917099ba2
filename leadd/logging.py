"""JSON-lines logging to stderr (journald under systemd) and an optional file.

Every line is one JSON object with ``timestamp``, ``level``, ``logger``,
``message`` and, where known, ``event``, ``request_id`` and ``search_id``.
Secrets are removed from the finished line, whatever produced it. The
access line is built apart (``JsonAccessLogger``) and redacts the two
fields a client chooses: the path here, the request id in the request
middleware.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import logging.handlers
import os
import re
import sys
import time as _time
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, RequestKey, StreamResponse
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

__all__ = [
    "REDACTED",
    "REQUEST_ID_KEY",
    "JsonAccessLogger",
    "Redactor",
    "request_id_var",
    "search_id_var",
    "setup_logging",
]

REDACTED = "[REDACTED]"

# LogRecord attributes that are not extra fields (python-json-logger's list).
_RESERVED_ATTRS = frozenset(RESERVED_ATTRS) | {"message", "asctime"}

# The request storage key under which the request middleware keeps the request's id.
REQUEST_ID_KEY = RequestKey("request_id", str)

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
        # the record.
        log_data["timestamp"] = utc_timestamp(record.created)
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
        # A line must stay one line for journald and logrotate readers.
        return self.with_priority(self._redactor(super().format(record)).replace("\n", "\\n"), record.levelno)

    def with_priority(self, line: str, levelno: int) -> str:
        """Add the journald priority when the stream is the journal."""
        if self._syslog_prefix:
            return f"<{_SYSLOG_PRIORITY.get(levelno, 6)}>{line}"
        return line


class _LineWriting(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that also takes lines serialised elsewhere (the access log).

    Such lines are collected and written together once the event loop has
    run the current round of callbacks: one write for many requests instead
    of one each. Any ordinary record first writes what is waiting, so lines
    stay in order. A kill -9 loses at most the lines of that one round.
    """

    formatter: _Formatter

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: list[str] = []

    def write_line(self, line: str, levelno: int) -> None:
        """Write ``line``, already redacted and on one line, with the others of this round."""
        if levelno < self.level:
            return
        text = self.formatter.with_priority(line, levelno) + self.terminator
        with self.lock:  # type: ignore[union-attr]
            self._pending.append(text)
            if len(self._pending) > 1:
                return
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # not on the event loop's thread
            self.flush()

    def handle(self, record: logging.LogRecord) -> logging.LogRecord | bool:
        if self._pending:
            self.flush()
        return super().handle(record)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            text = "".join(self._pending)
            self._pending.clear()
            try:
                if text:
                    self._before_write()
                    self.stream.write(text)
                super().flush()
            except Exception:
                # handleError prints the failure to stderr and returns, as for
                # a failed emit, so a full disk does not raise into the caller.
                self.handleError(logging.makeLogRecord({"msg": "access lines"}))

    def _before_write(self) -> None:
        pass


class _FileHandler(logging.handlers.WatchedFileHandler, _LineWriting):
    def __init__(self, filename: Path, encoding: str) -> None:
        # FileHandler calls StreamHandler.__init__ directly, past _LineWriting's.
        super().__init__(filename, encoding=encoding)
        self._pending = []

    def _before_write(self) -> None:
        self.reopenIfNeeded()


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

    stderr = _LineWriting(sys.stderr)
    stderr.setFormatter(_Formatter(redactor, syslog_prefix=_stderr_is_journal()))
    stderr.addFilter(_ContextFilter())
    root.addHandler(stderr)

    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = _FileHandler(log_file, encoding="utf-8")
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
    """One line per HTTP request, with the request id the middleware assigned.

    Every request pays for this line, so it skips the ``logging`` machinery
    (record, filters, formatter, ``json.dumps`` of a dict). It fills a fixed
    template and escapes each string with json's own encoder, which also
    keeps the line on one line. It redacts the path. The request id, the
    other field a client chooses, is a generated one whenever the client's
    id would need redacting (leadd.api.middleware). The root handlers then
    prefix the line for journald and reopen a rotated file. Handlers of
    other kinds, such as the ones tests install, get an ordinary record.
    docs/benchmarks.md has the measured cost.

    aiohttp builds the instance itself, so the redactor comes in through
    a subclass: ``JsonAccessLogger.using(redactor)``.
    """

    redactor = Redactor()

    @classmethod
    def using(cls, redactor: Redactor) -> type[JsonAccessLogger]:
        return type(cls.__name__, (cls,), {"redactor": redactor})

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._head = f'"level": "info", "logger": {_json_str(logger.name)}'

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        method = request.method
        path = self.redactor(request.path)
        status = response.status
        request_id = request.get(REQUEST_ID_KEY)
        remote = request.remote
        line = (
            f'{{"timestamp": "{utc_timestamp(_time.time())}", {self._head}, '
            f'"message": {_json_str(f"{method} {path} {status}")}, "event": "http_request", '
            f'"request_id": {_json_str(request_id)}, "method": {_json_str(method)}, "path": {_json_str(path)}, '
            f'"status": {status:d}, "duration_ms": {time * 1000:.2f}, "bytes_sent": {response.body_length or 0:d}, '
            f'"remote": {_json_str(remote)}}}'
        )
        logger: logging.Logger | None = self.logger
        while logger is not None:
            for handler in logger.handlers:
                if isinstance(handler, _LineWriting):
                    handler.write_line(line, logging.INFO)
                elif logging.INFO >= handler.level:
                    fields = json.loads(line)
                    extra = {key: fields[key] for key in _ACCESS_EXTRA}
                    handler.handle(self.logger.makeRecord(self.logger.name, logging.INFO, "", 0, fields["message"], (), None, extra=extra))
            logger = logger.parent if logger.propagate else None

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


_ACCESS_EXTRA = ("event", "request_id", "method", "path", "status", "duration_ms", "bytes_sent", "remote")


def _json_str(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


# The formatted second of the newest timestamp: (second, "YYYY-MM-DDTHH:MM:SS").
# One tuple, replaced whole, so threads never see a second with another's text.
_second_text: tuple[int, str] = (0, "1970-01-01T00:00:00")


def utc_timestamp(when: float) -> str:
    """Format ``when`` as RFC 3339 UTC with milliseconds, such as ``2026-12-04T23:27:43.123Z``."""
    global _second_text
    second = int(when)
    cached = _second_text
    if cached[0] != second:
        cached = _second_text = (second, _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(second)))
    return f"{cached[1]}.{int((when - second) * 1000):03d}Z"
