"""``SQLiteStore``: the embedded, durable ``CheckpointStore`` (one file, WAL mode).

Durability (WAL journal): ``FULL`` syncs every commit; WAL + ``NORMAL`` survives
kill -9 but may lose the last commits on power loss. In detail:

* ``synchronous="FULL"`` (default): every commit fsyncs the WAL before ``save``
  returns. An acknowledged save survives kill -9, an OS crash and power loss
  (given a disk that honours fsync).
* ``synchronous="NORMAL"``: the WAL is fsynced only at WAL checkpoints. An
  acknowledged save survives kill -9 (the commit sits in the OS page cache), but
  an OS crash or power loss may roll back the most recent commits; the file is
  never corrupted. Faster; choose it when losing the last steps is acceptable.
* ``"EXTRA"`` is accepted too (also syncs the directory after a rollback journal
  is deleted; in WAL mode it behaves like FULL).

Concurrency: one connection per store, opened with ``check_same_thread=False``
and guarded by a lock, rather than one connection per thread: pykka gives every
actor its own thread, and per-thread connections could not be closed by
``close()`` from another thread. SQLite admits one writer at a time anyway, and
every call here is a short transaction, so the lock costs little. Between
processes, every read-modify-write runs in ``BEGIN IMMEDIATE`` (autocommit mode,
``isolation_level=None``) so the write lock is taken before the read, and a busy
database is waited for up to ``busy_timeout`` seconds. Reads run in a deferred
transaction, a consistent WAL snapshot. All processes must be on one host (WAL
does not work on network filesystems).

WAL growth: ``wal_autocheckpoint`` stays at 1000 pages (~4 MiB) and
``journal_size_limit`` truncates the WAL file back to 64 MiB after a checkpoint,
so one large context does not leave a huge WAL file behind. Transactions are
short, so readers never pin the WAL for long.

Corruption: the context blob is stored with its length and CRC-32, each step
output with its CRC-32; ``load`` checks them and raises ``PersistenceError``
naming the run, so a truncated or overwritten blob is never handed to the
decoder as if it were valid. The schema version is ``PRAGMA user_version``
(currently 1), checked on open: an unknown version or a foreign database raises
``PersistenceError``.

Errors: every ``sqlite3`` and ``OSError`` is translated into ``PersistenceError``
(``raise ... from exc``) naming the path or the run; callers never see sqlite3.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import sqlite3
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from actors import Clock, PersistenceError, RealClock
from runtime.store._protocol import (
    Checkpoint,
    RunSummary,
    StepRecord,
    check_checkpoint,
    check_claim_args,
    check_lease,
    check_run_id,
    run_busy,
    stale_epoch,
    steps_to_write,
    unknown_run,
    unsaved_run,
)

__all__ = ["DEFAULT_PATH", "SCHEMA_VERSION", "SQLiteStore"]

log = logging.getLogger(__name__)

DEFAULT_PATH: Final = Path(".actorflow") / "state.db"
SCHEMA_VERSION: Final = 1
_SYNCHRONOUS_LEVELS: Final = ("FULL", "NORMAL", "EXTRA")
_WAL_AUTOCHECKPOINT_PAGES: Final = 1000
_JOURNAL_SIZE_LIMIT: Final = 64 * 1024 * 1024

_SCHEMA: Final = (
    """
    CREATE TABLE runs (
        run_id       TEXT PRIMARY KEY,
        workflow     TEXT,              -- NULL until the first save
        fingerprint  TEXT,
        state        TEXT,
        context      BLOB,
        context_len  INTEGER,           -- length and CRC-32 of context, checked by load
        context_crc  INTEGER,
        epoch        INTEGER NOT NULL,  -- fencing token, bumped by every claim
        owner        TEXT,
        lease_until  REAL,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL,
        meta         TEXT               -- JSON object of str -> str
    )
    """,
    """
    CREATE TABLE steps (
        run_id       TEXT NOT NULL,
        key          TEXT NOT NULL,
        state        TEXT NOT NULL,
        attempts     INTEGER NOT NULL,
        output       BLOB,
        output_crc   INTEGER,           -- CRC-32 of output, checked by load
        error        TEXT,
        started_at   REAL,
        finished_at  REAL,
        PRIMARY KEY (run_id, key)
    )
    """,
)

_LIST_QUERY: Final = """
    SELECT r.run_id, r.workflow, r.state, r.epoch, r.owner, r.lease_until,
           r.created_at, r.updated_at, r.context_len IS NOT NULL,
           COUNT(s.key), COALESCE(SUM(lower(s.state) = 'completed'), 0)
    FROM runs AS r LEFT JOIN steps AS s ON s.run_id = r.run_id
    GROUP BY r.run_id
    ORDER BY r.created_at, r.run_id
"""


def _crc(data: bytes) -> int:
    return zlib.crc32(data)


class SQLiteStore:
    """A ``CheckpointStore`` in one SQLite file; thread- and multi-process-safe.

    Args:
        path: the database file; its folder is created. Default ``./.actorflow/state.db``.
        synchronous: ``"FULL"`` (default) or ``"NORMAL"``; see the module docstring.
        busy_timeout: seconds to wait for another process's write lock.
        clock: where lease times are read (``clock.wall()``).

    Raises:
        PersistenceError: the path cannot be created or opened, is not an
            actorflow database, or has an unknown schema version.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        level = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if level not in _SYNCHRONOUS_LEVELS:
            raise ValueError(
                f"synchronous must be one of {_SYNCHRONOUS_LEVELS}, got {synchronous!r}"
            )
        if not busy_timeout >= 0:
            raise ValueError(f"busy_timeout must be >= 0 seconds, got {busy_timeout!r}")
        self.path = Path(path) if path is not None else Path.cwd() / DEFAULT_PATH
        self.synchronous: str = level
        self._clock: Clock = clock if clock is not None else RealClock()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = self._open(busy_timeout)
        log.debug("opened checkpoint store %s (synchronous=%s)", self.path, self.synchronous)

    def _open(self, busy_timeout: float) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PersistenceError(
                f"cannot create the folder of checkpoint store {self.path}: {exc}"
            ) from exc
        try:
            conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise PersistenceError(f"cannot open checkpoint store {self.path}: {exc}") from exc
        try:
            self._configure(conn)
            self._check_schema(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise PersistenceError(f"cannot open checkpoint store {self.path}: {exc}") from exc
        except PersistenceError:
            conn.close()
            raise
        return conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise PersistenceError(
                f"checkpoint store {self.path}: cannot enable WAL mode (journal_mode={mode})"
            )
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={_JOURNAL_SIZE_LIMIT}")

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            if version == 0 and not tables:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version == 0:
                raise PersistenceError(
                    f"{self.path} is not an actorflow checkpoint store "
                    f"(it has tables {sorted(tables)} but no schema version)"
                )
            elif version != SCHEMA_VERSION:
                raise PersistenceError(
                    f"checkpoint store {self.path} has schema version {version}; this "
                    f"actorflow reads version {SCHEMA_VERSION} (written by another release?)"
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, synchronous={self.synchronous!r})"

    @contextmanager
    def _transaction(self, action: str, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction under the store lock; sqlite3 errors become PersistenceError."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise PersistenceError(f"{action}: checkpoint store {self.path} is closed")
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except (sqlite3.Error, OverflowError) as exc:  # OverflowError: int over 64 bits
                if conn.in_transaction:
                    self._rollback_quietly(conn)
                raise PersistenceError(f"{action} in {self.path}: {exc}") from exc

    @staticmethod
    def _rollback_quietly(conn: sqlite3.Connection) -> None:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.warning("rollback failed after a sqlite error", exc_info=True)

    def claim(self, run_id: str, *, owner: str, lease: float, force: bool = False) -> int:
        check_claim_args(run_id, owner, lease)
        with self._transaction(f"run {run_id}: claim", write=True) as conn:
            now = self._clock.wall()
            row = conn.execute(
                "SELECT epoch, owner, lease_until FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO runs (run_id, epoch, owner, lease_until, created_at, updated_at)"
                    " VALUES (?, 1, ?, ?, ?, ?)",
                    (run_id, owner, now + lease, now, now),
                )
                return 1
            epoch, current_owner, lease_until = row
            if (
                not force
                and current_owner is not None
                and current_owner != owner
                and lease_until is not None
                and lease_until > now
            ):
                raise run_busy(run_id, current_owner, lease_until, now)
            conn.execute(
                "UPDATE runs SET epoch = ?, owner = ?, lease_until = ? WHERE run_id = ?",
                (epoch + 1, owner, now + lease, run_id),
            )
            return int(epoch) + 1

    def renew(self, run_id: str, *, epoch: int, lease: float) -> None:
        check_lease(lease)
        with self._transaction(f"run {run_id}: renew", write=True) as conn:
            row = conn.execute(
                "SELECT epoch, owner FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None or row[0] != epoch:
                raise stale_epoch(run_id, epoch, row and row[0], "renew")
            if row[1] is None:
                raise stale_epoch(run_id, epoch, None, "renew a released lease")
            conn.execute(
                "UPDATE runs SET lease_until = ? WHERE run_id = ?",
                (self._clock.wall() + lease, run_id),
            )

    def release(self, run_id: str, *, epoch: int) -> None:
        with self._transaction(f"run {run_id}: release", write=True) as conn:
            conn.execute(
                "UPDATE runs SET owner = NULL, lease_until = NULL WHERE run_id = ? AND epoch = ?",
                (run_id, epoch),
            )

    def save(self, checkpoint: Checkpoint, *, changed_steps: Iterable[str] | None = None) -> None:
        check_checkpoint(checkpoint)
        upserts, deletes = steps_to_write(checkpoint, changed_steps)
        run_id = checkpoint.run_id
        context = checkpoint.context
        run_values = (
            checkpoint.workflow,
            checkpoint.fingerprint,
            checkpoint.state,
            context,
            len(context),
            _crc(context),
            checkpoint.created_at,
            checkpoint.updated_at,
            json.dumps(dict(checkpoint.meta), sort_keys=True),
            run_id,
            checkpoint.epoch,
        )
        step_rows = [
            (
                run_id,
                step.step,
                step.state,
                step.attempts,
                step.output,
                None if step.output is None else _crc(step.output),
                step.error,
                step.started_at,
                step.finished_at,
            )
            for step in upserts
        ]
        with self._transaction(f"run {run_id}: save", write=True) as conn:
            updated = conn.execute(
                "UPDATE runs SET workflow = ?, fingerprint = ?, state = ?, context = ?,"
                " context_len = ?, context_crc = ?, created_at = ?, updated_at = ?, meta = ?"
                " WHERE run_id = ? AND epoch = ?",
                run_values,
            ).rowcount
            if updated != 1:
                row = conn.execute("SELECT epoch FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                raise stale_epoch(run_id, checkpoint.epoch, row and row[0], "save")
            if changed_steps is None:
                conn.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
            conn.executemany(
                "INSERT INTO steps (run_id, key, state, attempts, output, output_crc, error,"
                " started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, key) DO UPDATE SET state = excluded.state,"
                " attempts = excluded.attempts, output = excluded.output,"
                " output_crc = excluded.output_crc, error = excluded.error,"
                " started_at = excluded.started_at, finished_at = excluded.finished_at",
                step_rows,
            )
            conn.executemany(
                "DELETE FROM steps WHERE run_id = ? AND key = ?", [(run_id, key) for key in deletes]
            )

    def load(self, run_id: str) -> Checkpoint:
        check_run_id(run_id)
        with self._transaction(f"run {run_id}: load", write=False) as conn:
            run_row = conn.execute(
                "SELECT workflow, fingerprint, state, context, context_len, context_crc, epoch,"
                " created_at, updated_at, meta FROM runs WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            step_rows = conn.execute(
                "SELECT key, state, attempts, output, output_crc, error, started_at, finished_at"
                " FROM steps WHERE run_id = ? ORDER BY rowid",
                (run_id,),
            ).fetchall()
        if run_row is None:
            raise unknown_run(run_id)
        return _checkpoint_from_rows(run_id, run_row, step_rows)

    def delete(self, run_id: str) -> None:
        with self._transaction(f"run {run_id}: delete", write=True) as conn:
            conn.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def list(self) -> builtins.list[RunSummary]:
        with self._transaction("list runs", write=False) as conn:
            rows = conn.execute(_LIST_QUERY).fetchall()
        return [
            RunSummary(
                run_id=run_id,
                workflow=workflow or "",
                state=state or "",
                epoch=epoch,
                owner=owner,
                lease_until=lease_until,
                created_at=created_at,
                updated_at=updated_at,
                steps_total=steps_total,
                steps_completed=steps_completed,
                has_checkpoint=bool(has_checkpoint),
            )
            for (
                run_id,
                workflow,
                state,
                epoch,
                owner,
                lease_until,
                created_at,
                updated_at,
                has_checkpoint,
                steps_total,
                steps_completed,
            ) in rows
        ]

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                raise PersistenceError(f"closing checkpoint store {self.path}: {exc}") from exc


def _checkpoint_from_rows(
    run_id: str, run_row: tuple[Any, ...], step_rows: builtins.list[tuple[Any, ...]]
) -> Checkpoint:
    """Build a Checkpoint, raising PersistenceError for any blob that fails its check."""
    (workflow, fingerprint, state, context, context_len, context_crc, epoch) = run_row[:7]
    created_at, updated_at, meta_json = run_row[7:]
    if context_len is None:
        raise unsaved_run(run_id)
    if not isinstance(context, bytes):
        raise _corrupt(run_id, f"context is {type(context).__name__}, not a blob")
    if len(context) != context_len:
        raise _corrupt(run_id, f"context is {len(context)} bytes, {context_len} were written")
    if _crc(context) != context_crc:
        raise _corrupt(run_id, "context fails its CRC-32 check")
    try:
        meta = json.loads(meta_json)
    except (TypeError, ValueError) as exc:
        raise _corrupt(run_id, f"meta is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _corrupt(run_id, "meta is not a JSON object of strings")
    steps: dict[str, StepRecord] = {}
    for key, step_state, attempts, output, output_crc, error, started_at, finished_at in step_rows:
        if output is not None and (not isinstance(output, bytes) or _crc(output) != output_crc):
            raise _corrupt(run_id, f"output of step {key!r} fails its CRC-32 check")
        steps[key] = StepRecord(
            step=key,
            state=step_state,
            attempts=attempts,
            output=output,
            error=error,
            started_at=started_at,
            finished_at=finished_at,
        )
    return Checkpoint(
        run_id=run_id,
        workflow=workflow,
        fingerprint=fingerprint,
        state=state,
        context=context,
        steps=steps,
        epoch=epoch,
        created_at=created_at,
        updated_at=updated_at,
        meta=meta,
    )


def _corrupt(run_id: str, reason: str) -> PersistenceError:
    return PersistenceError(f"run {run_id}: stored checkpoint is corrupt: {reason}")
