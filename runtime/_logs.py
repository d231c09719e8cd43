"""``JsonFormatter``: log records as one JSON object per line, with their run context.

Log collectors (Loki, Elasticsearch, ``jq``) filter on fields, not on text.
Records from ``current_step().log`` carry ``run_id``, ``step`` and ``attempt``;
records from ``LoggingObserver`` carry those and the event itself. This puts
them, and the event's fields, at the top level of the object, so "every line
of run X" is one filter whichever logger wrote it. Stdlib ``logging`` only.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import logging
from typing import Any

__all__ = ["JsonFormatter"]

_CONTEXT = ("run_id", "step", "attempt")


class JsonFormatter(logging.Formatter):
    """Formats a record as ``{"time", "level", "logger", "message", ...}`` on one line.

    ``time`` is ISO 8601 in UTC, to the millisecond. Then, where the record
    has them: ``run_id``, ``step``, ``attempt``; for an event record
    (``LoggingObserver``) ``event`` (its kind, e.g. ``"Completed"``) and each
    of its fields (an error as ``"Type: message"``); ``exc`` and ``stack``
    when the record has a traceback. The first four keys are never
    overwritten by a field of the same name.
    """

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _CONTEXT:
            if hasattr(record, key):
                data[key] = _plain(getattr(record, key))
        event = getattr(record, "event", None)
        if dataclasses.is_dataclass(event) and not isinstance(event, type):
            data["event"] = type(event).__name__
            for f in dataclasses.fields(event):
                data.setdefault(f.name, _plain(getattr(event, f.name)))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str)


def _plain(value: Any) -> Any:
    """A JSON-ready value: errors and enums as text, anything unknown as ``str``."""
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, enum.Enum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
