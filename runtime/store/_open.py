"""Open a store from what a user wrote: a store object, a PostgreSQL URL or a SQLite path."""

from __future__ import annotations

import os
from pathlib import Path

from actors import Clock
from runtime.store._postgres import PostgresStore
from runtime.store._postgres_db import is_postgres_url
from runtime.store._protocol import CheckpointStore
from runtime.store._sqlite import SQLiteStore

__all__ = ["StoreSpec", "open_store"]

StoreSpec = CheckpointStore | str | os.PathLike[str]
"""A store, ``postgresql://...`` (``PostgresStore``), or a SQLite file path (``SQLiteStore``)."""


def open_store(spec: StoreSpec, *, clock: Clock | None = None) -> CheckpointStore:
    """The store ``spec`` names; a store object is returned as it is.

    ``clock`` times the leases of a SQLite file (a PostgreSQL store uses the
    database's clock).

    Raises:
        PersistenceError: the database cannot be opened (one line naming it).
        TypeError: ``spec`` is none of the three.
    """
    if isinstance(spec, CheckpointStore):
        return spec
    if is_postgres_url(spec):
        assert isinstance(spec, str)
        return PostgresStore(spec)
    if isinstance(spec, str | os.PathLike):
        return SQLiteStore(Path(spec), clock=clock)
    raise TypeError(
        f"store must be a CheckpointStore, a postgresql:// URL or a SQLite file path, got {spec!r}"
    )
