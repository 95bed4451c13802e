"""Process logging: one JSON object per line, with the request or association it belongs
to, and no PHI (reliability.md sections 2.9 and 3, "PHI in logs").

:func:`configure` runs once at start-up (``serve``, ``migrate``). What keeps PHI out:

* our own messages carry only opaque values (request id, route template, status, condition
  names), never identifiers or values from a body, nor an exception's text;
* a traceback is logged as the exception's type and its frames (file, line, function),
  never its message, which may echo input;
* third-party loggers that may dump data sets, statements or URLs (pydicom, pynetdicom,
  SQLAlchemy, httpx, multipart) are capped at WARNING (pydicom at ERROR) whatever
  ``TR_LOG_LEVEL`` says, and pynetdicom's own message logging is switched off
  (reliability.md 1.1, R7); a library logging an exception object shows its type;
* Python warnings (pydicom warns with the offending value) are logged as their category
  and place only;
* uvicorn's access log, which records query strings, is off: the service writes its own
  access line with the route template (:mod:`.api.observe`).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from pynetdicom import _config as pynetdicom_config

# Loggers of libraries that may write PHI below the given level (data set dumps, SQL
# parameters, URLs with identifiers in the query string), and that level. pydicom warns
# quoting the offending value ("Invalid value for VR UI: '...'"), so only its errors pass.
CAPPED: Final = {
    "pydicom": logging.ERROR,
    "pynetdicom": logging.WARNING,
    "sqlalchemy": logging.WARNING,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "multipart": logging.WARNING,
    "python_multipart": logging.WARNING,
    "alembic": logging.WARNING,
}
# Extra fields a record may carry (``logger.info(..., extra={...})``) that a line shows.
FIELDS: Final = (
    "method",
    "route",
    "status",
    "duration_ms",
    "association_id",
    "calling_ae",
    "dimse_status",
    "condition",
    "channel",
)

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "log_context", default=None
)


@contextmanager
def bound(**fields: str) -> Iterator[None]:
    """Add *fields* (``request_id``, ``association_id``, ...) to every line logged in this
    context."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def bind(**fields: str) -> None:
    """Add *fields* to every later line of this thread or task (a DIMSE association's
    thread lives exactly as long as the association)."""
    _context.set({**(_context.get() or {}), **fields})


def current(name: str) -> str | None:
    """The bound value of *name* (e.g. ``request_id``), if any."""
    return (_context.get() or {}).get(name)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, the bound context and
    the known extra fields; an exception as its type and frames only."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": message(record),
            **(_context.get() or {}),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = record.exc_info[0].__name__
            line["stack"] = _frames(record.exc_info[2])
        return json.dumps(line, ensure_ascii=True, default=str)


class TextFormatter(logging.Formatter):
    """The same content as text, for a developer's terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {**(_context.get() or {})}
        fields.update({n: record.__dict__[n] for n in FIELDS if record.__dict__.get(n)})
        text = " ".join(f"{name}={value}" for name, value in fields.items())
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line = f"{stamp} {record.levelname} {record.name} {message(record)} {text}".rstrip()
        if record.exc_info and record.exc_info[0] is not None:
            frames = "\n  ".join(_frames(record.exc_info[2]))
            line += f"\n  {record.exc_info[0].__name__} at\n  {frames}"
        return line


def message(record: logging.LogRecord) -> str:
    """The record's message; for ``logger.exception(exc)`` (a library's habit) the
    exception's type instead of its text, which may echo input."""
    if isinstance(record.msg, BaseException):
        return type(record.msg).__name__
    return record.getMessage()


def _frames(tb: Any) -> list[str]:
    return [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(tb)]


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """Log a Python warning by category and place; its text may hold a value."""
    logging.getLogger("py.warnings").warning("%s at %s:%d", category.__name__, filename, lineno)


def configure(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Send every log record of the process to *stream* (stderr) as JSON or text lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name, floor in CAPPED.items():
        logging.getLogger(name).setLevel(max(root.level, floor))
    pynetdicom_config.LOG_HANDLER_LEVEL = "none"
    pynetdicom_config.LOG_REQUEST_IDENTIFIERS = False
    pynetdicom_config.LOG_RESPONSE_IDENTIFIERS = False
    warnings.showwarning = _show_warning
