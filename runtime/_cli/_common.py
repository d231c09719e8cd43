"""Helpers shared by the commands: the store option, bad usage, time and JSON formatting."""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from actors import PersistenceError
from runtime.store import (
    DEFAULT_PATH,
    PostgresStore,
    SQLiteStore,
    is_postgres_url,
    redact_url,
)

__all__ = [
    "UsageError",
    "add_db_option",
    "add_json_option",
    "db_location",
    "db_name",
    "format_duration",
    "format_time",
    "is_json_value",
    "iso_time",
    "open_store",
    "print_json",
]


class UsageError(Exception):
    """Bad usage found after parsing: ``main`` reports it as argparse does (exit 2)."""


def db_location(text: str) -> Path | str:
    """``--db``: a ``postgresql://`` URL is kept as it is; anything else is a SQLite path."""
    return text if is_postgres_url(text) else Path(text)


def db_name(db: Path | str) -> str:
    """``--db`` as printed: a URL without its password."""
    return redact_url(db) if isinstance(db, str) else os.fspath(db)


def add_db_option(parser: argparse.ArgumentParser, *, default: bool = True) -> None:
    env = os.environ.get("ACTORFLOW_DB")
    fallback = env or (str(DEFAULT_PATH) if default else None)
    parser.add_argument(
        "--db",
        type=db_location,
        default=db_location(fallback) if fallback else None,
        help="checkpoint database: a SQLite file or a postgresql:// URL "
        f"(default: $ACTORFLOW_DB{f' or {DEFAULT_PATH}' if default else ''})",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document on stdout (keys: see the README's CLI section)",
    )


def open_store(db: Path | str) -> SQLiteStore | PostgresStore:
    """Open an existing store; reading must never create an empty SQLite file."""
    if isinstance(db, str):
        return PostgresStore(db)
    if not db.is_file():
        raise PersistenceError(f"no checkpoint database at {db} (use --db PATH or a URL)")
    return SQLiteStore(db)


def format_time(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float | None) -> str:
    """Every duration the CLI prints, with 3 decimals: ``12.345ms`` under a second,
    ``1.234s`` from one second on, ``-`` if unknown."""
    if seconds is None:
        return "-"
    if round(abs(seconds), 6) < 1.0:  # so 0.99999999 is 1.000s, not 1000.000ms
        return f"{seconds * 1000:.3f}ms"
    return f"{seconds:.3f}s"


def iso_time(timestamp: float | None) -> str | None:
    """A timestamp for ``--json``: ISO-8601 UTC with milliseconds, None if unknown."""
    if not timestamp:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def is_json_value(value: object) -> bool:
    """Whether ``value`` is JSON as it is: no tuple, bytes, non-str key or non-finite float."""
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_json_value(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json_value(v) for k, v in value.items())
    return False


def print_json(document: Any) -> None:
    """Write ``document`` as the one JSON document on stdout (strict: no NaN)."""
    json.dump(document, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")
