"""The log line format and the caps on third-party loggers (service/entrypoints/logs.py;
README "Observability")."""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator

import pytest
from pynetdicom import _config as pynetdicom_config

from service.entrypoints import logs


@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    """logs.configure at DEBUG into a buffer; the logging state is restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, warnings.showwarning
    levels = {name: logging.getLogger(name).level for name in logs.CAPPED}
    flags = pynetdicom_config.LOG_HANDLER_LEVEL, pynetdicom_config.LOG_REQUEST_IDENTIFIERS
    stream = io.StringIO()
    logs.configure("debug", "json", stream)
    yield stream
    root.handlers[:], root.level, warnings.showwarning = saved
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    pynetdicom_config.LOG_HANDLER_LEVEL, pynetdicom_config.LOG_REQUEST_IDENTIFIERS = flags


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_json_with_the_bound_context_and_extra_fields(configured: io.StringIO) -> None:
    with logs.bound(request_id="r-1"):
        logging.getLogger("service.x").info("request", extra={"route": "/a/{b}", "status": 200})
    logging.getLogger("service.x").debug("outside")
    first, second = _lines(configured)
    assert first["request_id"] == "r-1" and first["route"] == "/a/{b}" and first["status"] == 200
    assert first["level"] == "INFO" and first["logger"] == "service.x"
    assert "request_id" not in second and second["message"] == "outside"


def test_an_exception_is_logged_by_type_and_frames_never_its_message(
    configured: io.StringIO,
) -> None:
    try:
        raise ValueError("PatientID P-SECRET is bad")
    except ValueError as exc:
        logging.getLogger("service.x").exception("failed")
        logging.getLogger("some.library").error(exc)  # a library logging the exception object
    text = configured.getvalue()
    assert "P-SECRET" not in text
    first, second = _lines(configured)
    assert first["exception"] == "ValueError" and first["message"] == "failed"
    assert any("test_logs.py" in frame for frame in first["stack"])  # type: ignore[attr-defined]
    assert second["message"] == "ValueError"


def test_third_party_loggers_stay_capped_at_debug(configured: io.StringIO) -> None:
    logging.getLogger("pydicom").warning("Invalid value for VR UI: 'P-SECRET'")
    logging.getLogger("pynetdicom.dimse").info("Affected SOP Instance UID: 1.2.3")
    logging.getLogger("sqlalchemy.engine").info("SELECT ... ('P-SECRET',)")
    logging.getLogger("pynetdicom").warning("association aborted")
    assert [line["message"] for line in _lines(configured)] == ["association aborted"]
    assert pynetdicom_config.LOG_HANDLER_LEVEL == "none"
    assert pynetdicom_config.LOG_REQUEST_IDENTIFIERS is False


def test_a_python_warning_is_logged_by_category_and_place(configured: io.StringIO) -> None:
    warnings.showwarning(UserWarning("value 'P-SECRET'"), UserWarning, "reader.py", 7)
    (line,) = _lines(configured)
    assert line["message"] == "UserWarning at reader.py:7"


def test_text_format_carries_the_same_fields() -> None:
    record = logging.LogRecord("service.x", logging.INFO, __file__, 1, "C-STORE", None, None)
    record.dimse_status = "0x0000"
    with logs.bound(association_id="a-1"):
        line = logs.TextFormatter().format(record)
    assert line.endswith("INFO service.x C-STORE association_id=a-1 dimse_status=0x0000")
    record.exc_info = (KeyError, KeyError("P-SECRET"), None)
    assert "P-SECRET" not in logs.TextFormatter().format(record)
