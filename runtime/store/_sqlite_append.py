"""``SQLiteStore.append`` in SQL: a batch of appends in one transaction, one savepoint each.

An append is one ``UPDATE`` of the run's row by primary key (fenced by the
epoch; it also tells a never-started run apart) and one ``INSERT`` per record:
the cost does not depend on how many records the run already has. An outcome
naming ``output_step`` adds one indexed lookup of that step's last record.
"""

from __future__ import annotations

import builtins
import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from actors import PersistenceError
from runtime.store._protocol import (
    Outcome,
    RunHeader,
    StepRecord,
    bad_output_step,
    is_completed,
    stale_epoch,
)
from runtime.store._sqlite_schema import crc, outcome_columns

__all__ = [
    "APPEND_RUN",
    "APPEND_STEP",
    "LAST_RECORD",
    "Append",
    "closed_batch",
    "rollback_quietly",
    "start_values",
    "write_batch",
]

log = logging.getLogger(__name__)

APPEND_RUN: Final = (
    "UPDATE runs SET state = ?, updated_at = ?, output = ?, output_crc = ?, output_step = ?,"
    " error = ?, unrecorded = ? WHERE run_id = ? AND epoch = ? AND context_len IS NOT NULL"
)
APPEND_STEP: Final = (
    "INSERT INTO steps (run_id, step, state, attempts, output, output_crc, error, started_at,"
    " finished_at, node) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
LAST_RECORD: Final = (
    "SELECT state, output IS NOT NULL FROM steps WHERE run_id = ? AND step = ?"
    " ORDER BY seq DESC LIMIT 1"
)

Results = builtins.list[BaseException | None]


def start_values(
    header: RunHeader, *, epoch: int, state: str, updated_at: float
) -> tuple[Any, ...]:
    """A run's header as the ``runs`` columns a start writes (both SQL stores), then
    ``run_id`` and ``epoch`` for its WHERE clause; the context with its length and CRC."""
    context = header.context
    return (
        header.workflow,
        header.fingerprint,
        context,
        len(context),
        crc(context),
        json.dumps(dict(header.settings), sort_keys=True),
        header.created_at,
        state,
        updated_at,
        header.run_id,
        epoch,
    )


@dataclass(frozen=True)
class Append:
    """One ``append`` call as rows, ready to write (CRCs computed by the caller's thread)."""

    run_id: str
    epoch: int
    run_values: tuple[Any, ...]
    step_rows: builtins.list[tuple[Any, ...]]
    output_step: str | None

    @classmethod
    def of(
        cls,
        run_id: str,
        epoch: int,
        records: Sequence[StepRecord],
        state: str,
        updated_at: float,
        outcome: Outcome | None,
    ) -> Append:
        step_rows = [
            (
                run_id,
                record.step,
                record.state,
                record.attempts,
                record.output,
                None if record.output is None else crc(record.output),
                record.error,
                record.started_at,
                record.finished_at,
                record.node,
            )
            for record in records
        ]
        run_values = (state, updated_at, *outcome_columns(outcome), run_id, epoch)
        output_step = outcome.output_step if outcome is not None else None
        return cls(run_id, epoch, run_values, step_rows, output_step)


def write_batch(
    conn: sqlite3.Connection, batch: Sequence[Append], path: Path
) -> tuple[Results, bool]:
    """Write ``batch`` in one transaction; each append's result, and whether it committed.

    Each append of a batch of several runs in its own savepoint: one that fails
    (``StaleEpoch``, a bad value) is rolled back alone and its caller gets its
    error. If the transaction itself fails, nothing is written and every
    append without an error of its own gets a ``PersistenceError``.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        return [_error(item, f"in {path}: {exc}", exc) for item in batch], False
    alone = len(batch) == 1
    results: Results = []
    for item in batch:
        try:
            if not alone:
                conn.execute("SAVEPOINT item")
            _write(conn, item)
            if not alone:
                conn.execute("RELEASE item")
        except (sqlite3.Error, OverflowError, PersistenceError, ValueError) as exc:
            failed: BaseException = exc
            if isinstance(exc, sqlite3.Error | OverflowError):  # OverflowError: int over 64 bits
                failed = _error(item, f"in {path}: {exc}", exc)
            results.append(failed)
            if alone or not _undo_savepoint(conn):
                rollback_quietly(conn)
                return _all_failed(batch, results, f"in {path}: {failed}"), False
        else:
            results.append(None)
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        rollback_quietly(conn)
        return _all_failed(batch, results, f"in {path}: commit: {exc}", exc), False
    return results, True


def closed_batch(batch: Sequence[Append], path: Path) -> Results:
    return [_error(item, f"checkpoint store {path} is closed") for item in batch]


def _write(conn: sqlite3.Connection, item: Append) -> None:
    run_id, epoch = item.run_id, item.epoch
    if conn.execute(APPEND_RUN, item.run_values).rowcount != 1:
        row = conn.execute(
            "SELECT epoch, context_len IS NOT NULL FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is None or row[0] != epoch:
            raise stale_epoch(run_id, epoch, row and row[0], "append")
        raise PersistenceError(f"run {run_id}: cannot append before the run is started")
    conn.executemany(APPEND_STEP, item.step_rows)
    if item.output_step is not None:
        last = conn.execute(LAST_RECORD, (run_id, item.output_step)).fetchone()
        if last is None or not is_completed(last[0]) or not last[1]:
            raise bad_output_step(run_id, item.output_step)


def _undo_savepoint(conn: sqlite3.Connection) -> bool:
    """Roll back the failed append alone; False if the transaction is lost."""
    try:
        conn.execute("ROLLBACK TO item")
        conn.execute("RELEASE item")
    except sqlite3.Error:
        log.warning("rollback to a savepoint failed", exc_info=True)
        return False
    return conn.in_transaction


def rollback_quietly(conn: sqlite3.Connection) -> None:
    """Roll back an open transaction; a failure to do so is logged, not raised."""
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        log.warning("rollback failed after a sqlite error", exc_info=True)


def _all_failed(
    batch: Sequence[Append], results: Results, reason: str, cause: BaseException | None = None
) -> Results:
    """Nothing of ``batch`` was written: each append keeps its own error, or gets ``reason``."""
    own = results + [None] * (len(batch) - len(results))
    return [
        error if error is not None else _error(item, f"not written ({reason})", cause)
        for item, error in zip(batch, own, strict=True)
    ]


def _error(item: Append, reason: str, cause: BaseException | None = None) -> PersistenceError:
    """A PersistenceError of its own for one append of a batch."""
    error = PersistenceError(f"run {item.run_id}: append {reason}")
    error.__cause__ = cause
    return error
