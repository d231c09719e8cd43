"""Helpers shared by the commands: the store option, bad usage, time and duration formatting."""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path

from actors import PersistenceError
from runtime.store import DEFAULT_PATH, SQLiteStore

__all__ = ["UsageError", "add_db_option", "format_duration", "format_time", "open_store"]


class UsageError(Exception):
    """Bad usage found after parsing: ``main`` reports it as argparse does (exit 2)."""


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        type=Path,
        default=Path(os.environ.get("ACTORFLOW_DB", DEFAULT_PATH)),
        help=f"checkpoint database (default: $ACTORFLOW_DB or {DEFAULT_PATH})",
    )


def open_store(path: Path) -> SQLiteStore:
    """Open an existing store; reading must never create an empty database."""
    if not path.is_file():
        raise PersistenceError(f"no checkpoint database at {path} (use --db PATH)")
    return SQLiteStore(path)


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
