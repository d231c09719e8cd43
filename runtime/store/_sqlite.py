"""``SQLiteStore``: the embedded, durable ``CheckpointStore`` (one file, WAL mode).

Schema (version 3, see ``runtime.store._sqlite_schema``): a ``runs`` row per
run holds its lease and epoch, its header (written once by ``start``) and its
state and outcome (updated in place); a ``steps`` row per appended step
record, in append order. ``append`` inserts its records and updates the run's
row, so a checkpoint costs the same at step 10 and step 10,000. A version 1
or 2 file (the releases before) is migrated when it is opened.

Durability (WAL journal): ``FULL`` syncs every commit; WAL + ``NORMAL`` survives
kill -9 but may lose the last commits on power loss. In detail:

* ``synchronous="FULL"`` (default): every commit fsyncs the WAL before ``append``
  returns. An acknowledged append survives kill -9, an OS crash and power loss
  (given a disk that honours fsync).
* ``synchronous="NORMAL"``: the WAL is fsynced only at WAL checkpoints. An
  acknowledged append survives kill -9 (the commit sits in the OS page cache),
  but an OS crash or power loss may roll back the most recent commits; the file
  is never corrupted. Faster; choose it when losing the last steps is acceptable.
* ``"EXTRA"`` is accepted too (also syncs the directory after a rollback journal
  is deleted; in WAL mode it behaves like FULL).

Group commit: appends that are due together (runs of one process checkpointing
at the same moment) are written in one transaction, so they share one fsync
(``runtime.store._group_commit``: the first writer leads and commits whatever
queued up meanwhile, waiting at most ``group_window`` seconds for writers
already on their way). Each caller returns only once its own records are
committed with the configured ``synchronous``; each runs in its own savepoint,
so one run's ``StaleEpoch`` or bad value fails that caller alone. ``stats()``
counts appends and the transactions that carried them.

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
output and the run's output with their CRC-32; ``load`` checks them and raises
``PersistenceError`` naming the run, so a truncated or overwritten blob is
never handed to the decoder as if it were valid. The schema version is
``PRAGMA user_version``, checked on open: an unknown version or a foreign
database raises ``PersistenceError``.

Errors: every ``sqlite3`` and ``OSError`` is translated into ``PersistenceError``
(``raise ... from exc``) naming the path or the run; callers never see sqlite3.
"""

from __future__ import annotations

import builtins
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from actors import Clock, PersistenceError, RealClock
from runtime.store import _sqlite_actors as actor_rows
from runtime.store._actor_state import (
    ActorLease,
    ActorSnapshot,
    check_actor_key,
    check_snapshot_args,
)
from runtime.store._group_commit import GroupCommitter
from runtime.store._protocol import (
    Checkpoint,
    Outcome,
    RunHeader,
    RunSummary,
    StepRecord,
    check_append,
    check_claim_args,
    check_header,
    check_lease,
    check_run_id,
    run_busy,
    stale_epoch,
    unknown_run,
)
from runtime.store._sqlite_append import (
    Append,
    closed_batch,
    rollback_quietly,
    start_values,
    write_batch,
)
from runtime.store._sqlite_rows import (
    LIST_QUERY,
    LOAD_RUN,
    LOAD_STEPS,
    checkpoint_from_rows,
    summaries_from_rows,
)
from runtime.store._sqlite_schema import SCHEMA_VERSION, prepare_schema

__all__ = ["DEFAULT_PATH", "SCHEMA_VERSION", "SQLiteStore", "StoreStats"]

log = logging.getLogger(__name__)

DEFAULT_PATH: Final = Path(".actorflow") / "state.db"
_SYNCHRONOUS_LEVELS: Final = ("FULL", "NORMAL", "EXTRA")
_WAL_AUTOCHECKPOINT_PAGES: Final = 1000
_JOURNAL_SIZE_LIMIT: Final = 64 * 1024 * 1024
_MAX_BATCH: Final = 256


@dataclass(frozen=True)
class StoreStats:
    """What one ``SQLiteStore`` did since it was opened."""

    appends: int  # append calls that reached the committer
    append_transactions: int  # transactions that carried them (fewer: group commit)
    largest_batch: int  # most appends in one transaction
    queued: int  # appends waiting for their commit right now


class SQLiteStore:
    """A ``CheckpointStore`` in one SQLite file; thread- and multi-process-safe.

    Args:
        path: the database file; its folder is created. Default ``./.actorflow/state.db``.
        synchronous: ``"FULL"`` (default) or ``"NORMAL"``; see the module docstring.
        busy_timeout: seconds to wait for another process's write lock.
        clock: where lease times are read (``clock.wall()``).
        group_window: at most this many seconds an append waits for appends of
            other threads already on their way, to share their transaction.

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
        group_window: float = 0.002,
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
        self._group: GroupCommitter[Append] = GroupCommitter(
            self._commit_appends, window=group_window, max_batch=_MAX_BATCH
        )
        self._append_transactions = 0
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
            self._configure(conn, busy_timeout)
            prepare_schema(conn, self.path)
        except (sqlite3.Error, OSError) as exc:
            conn.close()
            raise PersistenceError(f"cannot open checkpoint store {self.path}: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _configure(self, conn: sqlite3.Connection, busy_timeout: float) -> None:
        mode = _enable_wal(conn, busy_timeout)
        if str(mode).lower() != "wal":
            raise PersistenceError(
                f"checkpoint store {self.path}: cannot enable WAL mode (journal_mode={mode})"
            )
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={_JOURNAL_SIZE_LIMIT}")

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, synchronous={self.synchronous!r})"

    def stats(self) -> StoreStats:
        group = self._group.stats()
        transactions = self._append_transactions  # no lock: a commit may hold it for long
        return StoreStats(group.submitted, transactions, group.largest_batch, group.queued)

    @contextmanager
    def _transaction(self, action: str, *, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction under the store lock; sqlite3 errors become PersistenceError."""
        with self._lock:
            conn = self._open_connection(action)
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
                    rollback_quietly(conn)
                raise PersistenceError(f"{action} in {self.path}: {exc}") from exc

    def _open_connection(self, action: str) -> sqlite3.Connection:
        if self._conn is None:
            raise PersistenceError(f"{action}: checkpoint store {self.path} is closed")
        return self._conn

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

    def start(self, header: RunHeader, *, epoch: int, state: str, updated_at: float) -> None:
        check_header(header)
        run_id = header.run_id
        values = start_values(header, epoch=epoch, state=state, updated_at=updated_at)
        with self._transaction(f"run {run_id}: start", write=True) as conn:
            updated = conn.execute(
                "UPDATE runs SET workflow = ?, fingerprint = ?, context = ?, context_len = ?,"
                " context_crc = ?, settings = ?, created_at = ?, state = ?, updated_at = ?,"
                " output = NULL, output_crc = NULL, output_step = NULL, error = NULL,"
                " unrecorded = NULL WHERE run_id = ? AND epoch = ?",
                values,
            ).rowcount
            if updated != 1:
                row = conn.execute("SELECT epoch FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                raise stale_epoch(run_id, epoch, row and row[0], "start")

    def append(
        self,
        run_id: str,
        *,
        epoch: int,
        records: Sequence[StepRecord],
        state: str,
        updated_at: float,
        outcome: Outcome | None = None,
    ) -> None:
        with self._group.arrival() as arrival:
            check_append(run_id, records, outcome)
            arrival.submit(Append.of(run_id, epoch, records, state, updated_at, outcome))

    def _commit_appends(self, batch: Sequence[Append]) -> builtins.list[BaseException | None]:
        with self._lock:
            if self._conn is None:
                return closed_batch(batch, self.path)
            results, committed = write_batch(self._conn, batch, self.path)
            self._append_transactions += committed
            return results

    def load(self, run_id: str) -> Checkpoint:
        check_run_id(run_id)
        with self._transaction(f"run {run_id}: load", write=False) as conn:
            run_row = conn.execute(LOAD_RUN, (run_id,)).fetchone()
            step_rows = conn.execute(LOAD_STEPS, (run_id,)).fetchall()
        if run_row is None:
            raise unknown_run(run_id)
        return checkpoint_from_rows(run_id, run_row, step_rows)

    def delete(self, run_id: str, *, epoch: int) -> None:
        with self._transaction(f"run {run_id}: delete", write=True) as conn:
            row = conn.execute("SELECT epoch FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return
            if row[0] != epoch:
                raise stale_epoch(run_id, epoch, row[0], "delete")
            conn.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def list(self) -> builtins.list[RunSummary]:
        with self._transaction("list runs", write=False) as conn:
            rows = conn.execute(LIST_QUERY).fetchall()
        return summaries_from_rows(rows)

    # -- actor state (runtime.store._actor_state) -----------------------------------------

    def claim_actor(
        self,
        key: str,
        *,
        owner: str,
        lease: float,
        force: bool = False,
        if_epoch: int | None = None,
    ) -> int | None:
        check_actor_key(key)
        check_claim_args(key, owner, lease)
        with self._transaction(f"actor {key}: claim", write=True) as conn:
            return actor_rows.claim_actor(
                conn,
                key,
                owner=owner,
                lease=lease,
                now=self._clock.wall(),
                force=force,
                if_epoch=if_epoch,
            )

    def renew_actor(self, key: str, *, epoch: int, lease: float) -> None:
        check_lease(lease)
        with self._transaction(f"actor {key}: renew", write=True) as conn:
            actor_rows.renew_actor(conn, key, epoch=epoch, until=self._clock.wall() + lease)

    def release_actor(self, key: str, *, epoch: int) -> None:
        with self._transaction(f"actor {key}: release", write=True) as conn:
            actor_rows.release_actor(conn, key, epoch=epoch)

    def actor_lease(self, key: str) -> ActorLease | None:
        check_actor_key(key)
        with self._transaction(f"actor {key}: read lease", write=False) as conn:
            return actor_rows.load_actor_lease(conn, key)

    def save_snapshot(self, key: str, *, epoch: int, state: bytes) -> None:
        check_snapshot_args(key, epoch, state)
        with self._transaction(f"actor {key}: save snapshot", write=True) as conn:
            actor_rows.save_snapshot(conn, key, epoch=epoch, state=state, now=self._clock.wall())

    def load_snapshot(self, key: str) -> ActorSnapshot | None:
        check_actor_key(key)
        with self._transaction(f"actor {key}: load snapshot", write=False) as conn:
            return actor_rows.load_snapshot(conn, key)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as exc:
                raise PersistenceError(f"closing checkpoint store {self.path}: {exc}") from exc


def _enable_wal(conn: sqlite3.Connection, busy_timeout: float) -> object:
    """``PRAGMA journal_mode=WAL``, tried again while the file is locked, for up to
    ``busy_timeout`` seconds: processes opening a fresh file at once contend for the
    exclusive lock the switch takes, and SQLite may answer "database is locked" at
    once rather than through its busy handler."""
    deadline = time.monotonic() + busy_timeout
    pause = 0.005
    while True:
        try:
            return conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)  # another process holds the lock for a moment: try again
        pause = min(pause * 2, 0.1)
