"""The log format of every process: one setup for the commands, uvicorn's workers and the writer child.

``text`` (the default) keeps the familiar ``time level logger message`` line, with every control
character of the message escaped, so a newline in a node name or user name can never start a line
of its own. ``json`` writes one JSON object per line (python-json-logger) with ``time``, ``level``,
``logger`` and ``message``, plus every field a call passes in ``extra``, and every key of
``extra={FIELDS: {...}}`` at the top level (the audit logger's ``node``, ``verb``, ``resource``,
``namespace``, ``name``, ``reason``: ``name`` could not be an ``extra`` key of its own, LogRecord has one).

uvicorn's own loggers (``uvicorn.error``, ``uvicorn.access``) are given no handlers of their own
(``log_config=None``), so they reach the root logger and share its format.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from pythonjsonlogger.json import JsonFormatter

LOG_FORMATS = ("text", "json")
LOG_FORMAT_ENV = "NODEAUTHZ_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
_CONTROL = {c: f"\\x{c:02x}" for c in range(32) if c not in (9,)} | {10: "\\n", 13: "\\r", 127: "\\x7f"}
FIELDS = "log_fields"  # extra={FIELDS: {...}}: keys written at the top level of a JSON line
# Loggers that announce every schema look at INFO (each readiness probe and command makes one).
_QUIET = ("alembic.runtime.migration", "alembic")


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape: one line, no terminal sequences."""
    return text.translate(_CONTROL)


class EscapingFormatter(logging.Formatter):
    """The text format, with control characters in the message escaped (tracebacks stay multi-line)."""

    _second = -1
    _stamp = ""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """logging's default stamp, its strftime done once a second (a refusal's audit line is hot)."""
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return (self.default_msec_format or "%s,%03d") % (self._stamp, record.msecs)


class FieldsJsonFormatter(JsonFormatter):
    """JSON lines; a record's ``FIELDS`` mapping is spread into the line's top-level keys."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.update(log_data.pop(FIELDS, None) or {})


def make_formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return FieldsJsonFormatter(
            JSON_FIELDS,
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )
    if log_format == "text":
        return EscapingFormatter(TEXT_FORMAT)
    raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")


def configure_logging(level: str | int = "INFO", log_format: str = "text", *, stream: Any = None) -> None:
    """Send every logger's records to stderr (or ``stream``) in ``log_format``; replaces earlier setup."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else _level(level))
    if root.level > logging.DEBUG:
        for name in _QUIET:
            logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # No access log: a line per request costs more than the check itself (and the webhook's own
    # audit lines say what matters). uvicorn switches it off; a later call here must not switch it on.
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False


def _level(name: str) -> int:
    value = logging.getLevelName(name.upper())
    return value if isinstance(value, int) else logging.INFO
