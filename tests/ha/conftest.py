"""Fixtures of the adoption tests: a schema of the session's PostgreSQL server, and hosts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .hosts import Hosts, schema_url


@pytest.fixture
def ha_url(postgres_url: str, postgres_schema: str) -> str:
    """A URL whose tables start empty (a schema of this test's own)."""
    return schema_url(postgres_url, postgres_schema)


@pytest.fixture
def hosts(ha_url: str, tmp_path: Path) -> Iterator[Hosts]:
    """Start members and workers; all are killed and reaped when the test ends."""
    started = Hosts(ha_url, tmp_path)
    try:
        yield started
    finally:
        started.close()
