"""The SQLite file format of ``SQLiteStore``: its schema, and the migrations to it.

Version 3 (``PRAGMA user_version = 3``), append-only step records::

    actor_state  leases and snapshots of actors (``runtime.store._sqlite_actors``),
           created when any file is opened (IF NOT EXISTS): older releases
           ignore it, so it needs no version of its own
    runs   one row per run: the epoch and lease; the header (workflow,
           fingerprint, context with its length and CRC-32, settings as JSON,
           created_at), written by start; the state, updated_at and outcome
           (output blob with its CRC-32, or output_step naming the step whose
           last record holds it; error; unrecorded), updated by every append.
    steps  one row per appended record, seq = append order (the rowid); the
           last record of a step wins; node names where the recorded
           attempt ran (NULL in records written before version 3).
           Indexed by (run_id, step).

Version 2 had no ``node`` column: opening a version 2 file adds it (one
``ALTER TABLE``, instant, no row rewritten); its records keep NULL there.

Version 1 (the releases before) kept one upserted row per step, keyed by
``(run_id, key)``, rewrote the context on every save, and kept the outcome in
a JSON ``meta`` column (a Completed run's output as base64). Opening a version 1
file rewrites it in place as version 3.

Every migration runs in one ``BEGIN IMMEDIATE`` transaction: another process
opening the file at the same time waits for it (``busy_timeout``) and then finds
version 3. Processes still running an older release must be stopped first: a
version 2 release refuses a version 3 file, a version 1 release cannot write it.
"""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
import zlib
from pathlib import Path
from typing import Any, Final

from actors import PersistenceError
from runtime.store._protocol import Outcome

__all__ = ["ACTOR_TABLE", "SCHEMA_VERSION", "crc", "outcome_columns", "prepare_schema"]

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 3

_RUNS: Final = """
    CREATE TABLE {name} (
        run_id       TEXT PRIMARY KEY,
        epoch        INTEGER NOT NULL,  -- fencing token, bumped by every claim
        owner        TEXT,
        lease_until  REAL,
        workflow     TEXT,              -- the header: NULL until start
        fingerprint  TEXT,
        context      BLOB,              -- the context the run started with
        context_len  INTEGER,           -- length and CRC-32 of context, checked by load
        context_crc  INTEGER,
        settings     TEXT,              -- JSON object of str -> str
        created_at   REAL NOT NULL,
        state        TEXT,              -- updated in place by every append
        updated_at   REAL NOT NULL,
        output       BLOB,              -- a Completed run's encoded output, stored once
        output_crc   INTEGER,
        output_step  TEXT,              -- or: the step whose last record holds the output
        error        TEXT,              -- a Failed or Canceled run's error
        unrecorded   TEXT               -- why a Completed run's output is not recorded
    )
"""
_STEPS: Final = """
    CREATE TABLE {name} (
        seq          INTEGER PRIMARY KEY,  -- append order; the last record of a step wins
        run_id       TEXT NOT NULL,
        step         TEXT NOT NULL,
        state        TEXT NOT NULL,
        attempts     INTEGER NOT NULL,
        output       BLOB,
        output_crc   INTEGER,              -- CRC-32 of output, checked by load
        error        TEXT,
        started_at   REAL,
        finished_at  REAL,
        node         TEXT                  -- where the attempt ran (NULL before version 3)
    )
"""
ACTOR_TABLE: Final = """
    CREATE TABLE IF NOT EXISTS actor_state (
        key          TEXT PRIMARY KEY,
        epoch        INTEGER NOT NULL,  -- fencing token, bumped by every claim
        owner        TEXT,
        lease_until  REAL,
        state        BLOB,              -- the last snapshot, encoded by the value codec
        state_crc    INTEGER,
        state_epoch  INTEGER,           -- the epoch whose incarnation wrote it
        updated_at   REAL
    )
"""
_STEPS_INDEX: Final = "CREATE INDEX steps_by_run ON steps (run_id, step)"


def crc(data: bytes) -> int:
    return zlib.crc32(data)


def prepare_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema in an empty file, migrate a version 1 or 2 file, or check the version.

    One ``BEGIN IMMEDIATE`` transaction: concurrent openers are serialised.

    Raises:
        PersistenceError: a foreign database, or an unknown schema version.
        sqlite3.Error: the file cannot be read or written (the caller translates it).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if version == 0 and not tables:
            _create(conn)
        elif version == 0:
            raise PersistenceError(
                f"{path} is not an actorflow checkpoint store "
                f"(it has tables {sorted(tables)} but no schema version)"
            )
        elif version == 1:
            _migrate_from_v1(conn, path)
        elif version == 2:
            _migrate_from_v2(conn, path)
        elif version != SCHEMA_VERSION:
            raise PersistenceError(
                f"checkpoint store {path} has schema version {version}; this "
                f"actorflow reads versions 1 to {SCHEMA_VERSION} (written by another release?)"
            )
        conn.execute(ACTOR_TABLE)  # IF NOT EXISTS: see runtime.store._sqlite_actors
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _create(conn: sqlite3.Connection) -> None:
    conn.execute(_RUNS.format(name="runs"))
    conn.execute(_STEPS.format(name="steps"))
    conn.execute(_STEPS_INDEX)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _migrate_from_v2(conn: sqlite3.Connection, path: Path) -> None:
    """Add version 3's ``node`` column (inside the caller's transaction); rows keep NULL."""
    conn.execute("ALTER TABLE steps ADD COLUMN node TEXT")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    log.info("checkpoint store %s: migrated from schema version 2 to %d", path, SCHEMA_VERSION)


def _migrate_from_v1(conn: sqlite3.Connection, path: Path) -> None:
    """Rewrite the version 1 tables as the current ones (inside the caller's transaction)."""
    conn.execute(_RUNS.format(name="runs_v2"))
    conn.execute(_STEPS.format(name="steps_v2"))
    conn.execute(
        "INSERT INTO steps_v2 (run_id, step, state, attempts, output, output_crc, error,"
        " started_at, finished_at) SELECT run_id, key, state, attempts, output, output_crc,"
        " error, started_at, finished_at FROM steps ORDER BY rowid"
    )
    runs = conn.execute(
        "SELECT run_id, epoch, owner, lease_until, workflow, fingerprint, context, context_len,"
        " context_crc, created_at, state, updated_at, meta FROM runs ORDER BY rowid"
    )
    count = 0
    for row in runs.fetchall():
        *kept, meta = row
        outcome = _outcome_from_meta(kept[0], kept[10], meta)
        conn.execute(
            "INSERT INTO runs_v2 (run_id, epoch, owner, lease_until, workflow, fingerprint,"
            " context, context_len, context_crc, created_at, state, updated_at, settings,"
            " output, output_crc, output_step, error, unrecorded)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{}', ?, ?, NULL, ?, ?)",
            (*kept, *outcome_columns(outcome)[:2], outcome.error, outcome.unrecorded),
        )
        count += 1
    conn.execute("DROP TABLE steps")
    conn.execute("DROP TABLE runs")
    conn.execute("ALTER TABLE runs_v2 RENAME TO runs")
    conn.execute("ALTER TABLE steps_v2 RENAME TO steps")
    conn.execute(_STEPS_INDEX)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    log.info(
        "checkpoint store %s: migrated %d runs from schema version 1 to %d",
        path,
        count,
        SCHEMA_VERSION,
    )


def _outcome_from_meta(run_id: str, state: Any, meta_json: Any) -> Outcome:
    """The version 1 ``meta`` (output as base64, error, output_unrecorded) as an Outcome."""
    if meta_json is None:  # claimed, never saved
        return Outcome()
    try:
        meta = json.loads(meta_json)
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        output = meta.get("output")
        data = None if output is None else base64.b64decode(output, validate=True)
    except (TypeError, ValueError) as exc:
        log.warning("run %s: its version 1 outcome is unreadable, not migrated: %s", run_id, exc)
        return Outcome(unrecorded=f"the version 1 record of the outcome is unreadable: {exc}")
    error, unrecorded = meta.get("error"), meta.get("output_unrecorded")
    return Outcome(
        output=data,
        error=error if isinstance(error, str) else None,
        unrecorded=unrecorded if isinstance(unrecorded, str) else None,
    )


def outcome_columns(outcome: Outcome | None) -> tuple[Any, ...]:
    """``(output, output_crc, output_step, error, unrecorded)`` of the runs table."""
    if outcome is None:
        return (None, None, None, None, None)
    output = outcome.output
    return (
        output,
        None if output is None else crc(output),
        outcome.output_step,
        outcome.error,
        outcome.unrecorded,
    )
