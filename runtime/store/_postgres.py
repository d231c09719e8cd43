"""``PostgresStore``: the ``CheckpointStore`` in a PostgreSQL database, shared by many hosts.

The same history as ``SQLiteStore`` (a ``runs`` row per run, a ``steps`` row
per appended record; schema in ``runtime.store._postgres_schema``), kept by a
server every host reaches, so a run outlives the host that coordinated it:
another member claims it once its lease has expired (``claim_orphan``) and
goes on from its last checkpoint.

Time: leases are read and written on the *database's* clock
(``clock_timestamp()``), never a host's, so hosts with skewed clocks agree on
when a lease ends. ``clock=`` replaces it for tests that drive time by hand.

Durability: ``append`` returns after PostgreSQL committed it (with the
server's ``synchronous_commit``, on by default: flushed to its WAL). An
acknowledged append survives the loss of any actorflow host and a restart of
the server.

Connection loss: every call runs in one transaction on a pooled connection,
tried again on a new one while the database is away, up to
``reconnect_timeout`` seconds (``runtime.store._postgres_db``, which also turns
errors into one-line ``PersistenceError``s). Trying again is safe for every call:
a transaction that broke before its commit wrote nothing, and one whose
commit landed unseen is harmless to repeat (an append records the same step
again and the last record wins; a claim by the same owner takes the next
epoch; renew, release, start and delete are idempotent). So during a restart
the runs' checkpoints wait, then go on.
"""

from __future__ import annotations

import builtins
import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, NoReturn, TypeVar

from actors import Clock, PersistenceError
from runtime.store._postgres_actors import PostgresActorState
from runtime.store._postgres_db import Database
from runtime.store._protocol import (
    Checkpoint,
    Outcome,
    RunHeader,
    RunSummary,
    StepRecord,
    bad_output_step,
    check_append,
    check_claim_args,
    check_header,
    check_lease,
    check_run_id,
    is_completed,
    run_busy,
    stale_epoch,
    unknown_run,
)
from runtime.store._sqlite_append import Append, start_values
from runtime.store._sqlite_rows import checkpoint_from_rows, summaries_from_rows

__all__ = ["PostgresStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_NOW: Final = "extract(epoch from clock_timestamp())::float8"

# One statement (its own transaction, in autocommit): update the run's row if the epoch
# is current, and insert the records only then; one round trip per checkpoint.
_APPEND_ONE: Final = (
    "WITH r AS ("
    "UPDATE runs SET state = %s, updated_at = %s, output = %s, output_crc = %s,"
    " output_step = %s, error = %s, unrecorded = %s"
    " WHERE run_id = %s AND epoch = %s AND context_len IS NOT NULL RETURNING 1),"
    " i AS (INSERT INTO steps (run_id, step, state, attempts, output, output_crc, error,"
    " started_at, finished_at, node, appended_at) SELECT v.* FROM (VALUES {values}) AS v"
    " WHERE EXISTS (SELECT 1 FROM r) RETURNING 1)"
    " SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM i)"
)
# The same for an append without an outcome (a step's checkpoint): the run's row is
# locked (a claim bumping the epoch waits for it, or it waits for the claim and sees
# the new epoch) and rewritten only if its state or outcome changes. Rewriting it on
# every step cost about 45 us per checkpoint on a loopback server. The lock is the one
# an UPDATE takes (FOR NO KEY UPDATE): two appends at once that both rewrite the row,
# each holding a share lock, would each wait for the other's (a deadlock).
_APPEND_PROGRESS: Final = (
    "WITH r AS (SELECT state IS DISTINCT FROM %s OR output IS NOT NULL"
    " OR output_step IS NOT NULL OR error IS NOT NULL OR unrecorded IS NOT NULL AS changes"
    " FROM runs WHERE run_id = %s AND epoch = %s AND context_len IS NOT NULL FOR NO KEY UPDATE),"
    " u AS (UPDATE runs SET state = %s, updated_at = %s, output = NULL, output_crc = NULL,"
    " output_step = NULL, error = NULL, unrecorded = NULL"
    " WHERE run_id = %s AND (SELECT changes FROM r) RETURNING 1),"
    " i AS (INSERT INTO steps (run_id, step, state, attempts, output, output_crc, error,"
    " started_at, finished_at, node, appended_at) SELECT v.* FROM (VALUES {values}) AS v"
    " WHERE EXISTS (SELECT 1 FROM r) RETURNING 1)"
    " SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM i)"
)
_APPEND_VALUES: Final = (
    "(%s::text, %s::text, %s::text, %s::integer, %s::bytea, %s::bigint, %s::text,"
    " %s::float8, %s::float8, %s::text, %s::float8)"
)


@functools.lru_cache(maxsize=128)
def _append_one_sql(rows: int, *, progress: bool) -> bytes:
    """``_APPEND_PROGRESS`` or ``_APPEND_ONE`` for ``rows`` step rows, encoded once (built
    per append, it cost more than the rest of the call's Python)."""
    statement = _APPEND_PROGRESS if progress else _APPEND_ONE
    return statement.format(values=", ".join([_APPEND_VALUES] * rows)).encode()


# The run's row, for an append whose records (if any) follow in the same transaction:
# steps_seq marks the records written before it, whose appended_at no longer counts.
_APPEND_RUN: Final = (
    "UPDATE runs SET state = %s, updated_at = %s, output = %s, output_crc = %s,"
    " output_step = %s, error = %s, unrecorded = %s, steps_seq = (SELECT max(seq) FROM steps)"
    " WHERE run_id = %s AND epoch = %s AND context_len IS NOT NULL"
)
_APPEND_STEP: Final = (
    "INSERT INTO steps (run_id, step, state, attempts, output, output_crc, error, started_at,"
    " finished_at, node, appended_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
# A run's updated_at: its latest record's, if written after the row (see the schema,
# version 4), else the row's. (Only run_id in the WHERE clause: with a condition on seq,
# or ORDER BY seq LIMIT 1, the planner walks the seq index of every run's records.)
_LOAD_RUN: Final = (
    "SELECT workflow, fingerprint, state, context, context_len, context_crc, epoch,"
    " created_at, COALESCE((SELECT CASE WHEN max(s.seq) > COALESCE(runs.steps_seq, 0)"
    " THEN (array_agg(s.appended_at ORDER BY s.seq DESC))[1] END"
    " FROM steps AS s WHERE s.run_id = runs.run_id), updated_at),"
    " settings, output, output_crc, output_step, error, unrecorded"
    " FROM runs WHERE run_id = %s"
)
_LOAD_STEPS: Final = (
    "SELECT step, state, attempts, output, output_crc, error, started_at, finished_at, node"
    " FROM steps WHERE run_id = %s ORDER BY seq"
)
_LIST: Final = """
    SELECT r.run_id, r.workflow, r.state, r.epoch, r.owner, r.lease_until,
           r.created_at, COALESCE(CASE WHEN max(s.seq) > COALESCE(r.steps_seq, 0)
               THEN (array_agg(s.appended_at ORDER BY s.seq DESC))[1] END, r.updated_at),
           r.context_len IS NOT NULL,
           COUNT(s.step), COUNT(s.step) FILTER (WHERE lower(s.state) = 'completed')
    FROM runs AS r LEFT JOIN (
        SELECT DISTINCT ON (run_id, step) run_id, step, state, seq, appended_at FROM steps
        ORDER BY run_id, step, seq DESC
    ) AS s ON s.run_id = r.run_id
    GROUP BY r.run_id
    ORDER BY r.created_at, r.run_id
"""


class PostgresStore(PostgresActorState):
    """A ``CheckpointStore`` in PostgreSQL; thread-safe, shared by processes on many hosts.

    Also an ``ActorStateStore`` (actor leases and snapshots, ``_postgres_actors``).

    Args:
        url: ``postgresql://user:password@host:port/database`` (libpq URL; a
            ``host=/socket/dir`` query parameter reaches a Unix socket).
        schema: keep the tables in this schema (created if missing) instead of
            ``public``: several deployments, or tests, share one database.
        pool_size: at most this many connections at once.
        connect_timeout: seconds to wait for the server when connecting.
        reconnect_timeout: seconds a call keeps trying again after its connection
            broke, before it raises ``PersistenceError``.
        clock: read lease times from ``clock.wall()`` instead of the database
            (tests that drive time by hand); leave it None in production.

    Raises:
        PersistenceError: in one line: a bad URL, a server that cannot be
            reached, a refused login, a schema of a newer release, or the
            ``postgres`` extra not installed.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        pool_size: int = 8,
        connect_timeout: float = 5.0,
        reconnect_timeout: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        # The pool and its transactions; the locks on this store use it too.
        self.database = Database(
            url,
            schema=schema,
            pool_size=pool_size,
            connect_timeout=connect_timeout,
            reconnect_timeout=reconnect_timeout,
        )
        self.url, self.where, self.schema = url, self.database.where, schema
        self._clock = clock
        log.debug("opened checkpoint store %s", self.where)

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"

    def _transaction(
        self, action: str, work: Callable[[Any], T], *, one_statement: bool = False
    ) -> T:
        return self.database.transaction(action, work, one_statement=one_statement)

    def _now(self, cur: Any) -> float:
        if self._clock is not None:
            return self._clock.wall()
        cur.execute(f"SELECT {_NOW}")
        return float(cur.fetchone()[0])

    def now(self) -> float:
        """The time leases are measured in: the database's clock, seconds since 1970."""
        return self._transaction("read the database time", self._now, one_statement=True)

    # -- ownership -----------------------------------------------------------------------

    def claim(self, run_id: str, *, owner: str, lease: float, force: bool = False) -> int:
        check_claim_args(run_id, owner, lease)

        def work(cur: Any) -> int:
            now = self._now(cur)
            cur.execute(
                "INSERT INTO runs (run_id, epoch, owner, lease_until, created_at, updated_at)"
                " VALUES (%s, 1, %s, %s, %s, %s) ON CONFLICT (run_id) DO NOTHING RETURNING 1",
                (run_id, owner, now + lease, now, now),
            )
            if cur.fetchone() is not None:
                return 1
            cur.execute(
                "SELECT epoch, owner, lease_until FROM runs WHERE run_id = %s FOR UPDATE",
                (run_id,),
            )
            _, current_owner, lease_until = cur.fetchone()
            if self._clock is None:
                now = self._now(cur)  # the row lock may have been waited for
            if (
                not force
                and current_owner is not None
                and current_owner != owner
                and lease_until is not None
                and lease_until > now
            ):
                raise run_busy(run_id, current_owner, lease_until, now)
            cur.execute(
                "UPDATE runs SET epoch = epoch + 1, owner = %s, lease_until = %s"
                " WHERE run_id = %s RETURNING epoch",
                (owner, now + lease, run_id),
            )
            return int(cur.fetchone()[0])

        return self._transaction(f"run {run_id}: claim", work)

    def claim_orphan(
        self, *, owner: str, lease: float, workflows: Sequence[str], skip: Iterable[str] = ()
    ) -> tuple[str, int] | None:
        """Claim one unfinished, started run whose lease has expired; ``(run_id, epoch)``.

        Only runs of ``workflows`` (the ones this member can continue). One
        transaction: the row is locked ``FOR UPDATE SKIP LOCKED``, so adopters
        scanning at once never take the same run, and its epoch is bumped, so
        the former owner's writes are refused from then on. Runs in ``skip`` are
        passed over (this member failed to continue them). None: nothing to adopt.
        """
        check_claim_args("orphan", owner, lease)
        names = sorted(set(workflows))
        skipped = sorted(set(skip))

        def work(cur: Any) -> tuple[str, int] | None:
            now = self._now(cur)
            cur.execute(
                "SELECT run_id FROM runs WHERE state IN ('Running', 'Pending')"
                " AND context_len IS NOT NULL AND workflow = ANY(%s) AND run_id <> ALL(%s)"
                " AND (owner IS NULL OR lease_until IS NULL OR lease_until <= %s)"
                " ORDER BY lease_until NULLS FIRST, run_id LIMIT 1 FOR UPDATE SKIP LOCKED",
                (names, skipped, now),
            )
            row = cur.fetchone()
            if row is None:
                return None
            cur.execute(
                "UPDATE runs SET epoch = epoch + 1, owner = %s, lease_until = %s"
                " WHERE run_id = %s RETURNING epoch",
                (owner, now + lease, row[0]),
            )
            return str(row[0]), int(cur.fetchone()[0])

        if not names:
            return None
        return self._transaction("adopt a run", work)

    def renew(self, run_id: str, *, epoch: int, lease: float) -> None:
        check_lease(lease)

        def work(cur: Any) -> None:
            now = self._now(cur)
            cur.execute(
                "UPDATE runs SET lease_until = %s"
                " WHERE run_id = %s AND epoch = %s AND owner IS NOT NULL",
                (now + lease, run_id, epoch),
            )
            if cur.rowcount == 1:
                return
            cur.execute("SELECT epoch FROM runs WHERE run_id = %s", (run_id,))
            row = cur.fetchone()
            if row is None or row[0] != epoch:
                raise stale_epoch(run_id, epoch, row and row[0], "renew")
            raise stale_epoch(run_id, epoch, None, "renew a released lease")

        self._transaction(f"run {run_id}: renew", work)

    def release(self, run_id: str, *, epoch: int) -> None:
        self._transaction(
            f"run {run_id}: release",
            lambda cur: cur.execute(
                "UPDATE runs SET owner = NULL, lease_until = NULL WHERE run_id = %s AND epoch = %s",
                (run_id, epoch),
            ),
        )

    # -- history -------------------------------------------------------------------------

    def start(self, header: RunHeader, *, epoch: int, state: str, updated_at: float) -> None:
        check_header(header)
        run_id = header.run_id
        values = start_values(header, epoch=epoch, state=state, updated_at=updated_at)

        def work(cur: Any) -> None:
            cur.execute(
                "UPDATE runs SET workflow = %s, fingerprint = %s, context = %s,"
                " context_len = %s, context_crc = %s, settings = %s, created_at = %s,"
                " state = %s, updated_at = %s, output = NULL, output_crc = NULL,"
                " output_step = NULL, error = NULL, unrecorded = NULL,"
                " steps_seq = (SELECT max(seq) FROM steps)"
                " WHERE run_id = %s AND epoch = %s",
                values,
            )
            if cur.rowcount != 1:
                cur.execute("SELECT epoch FROM runs WHERE run_id = %s", (run_id,))
                row = cur.fetchone()
                raise stale_epoch(run_id, epoch, row and row[0], "start")

        self._transaction(f"run {run_id}: start", work)

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
        check_append(run_id, records, outcome)
        item = Append.of(run_id, epoch, records, state, updated_at, outcome)
        step_rows = [(*row, updated_at) for row in item.step_rows]  # appended_at
        if item.output_step is None:  # the common case: one statement, one round trip
            self._transaction(
                f"run {run_id}: append",
                lambda cur: self._append_one(cur, item, step_rows, progress=outcome is None),
                one_statement=True,
            )
            return

        def work(cur: Any) -> None:
            cur.execute(_APPEND_RUN, item.run_values)
            if cur.rowcount != 1:
                self._refuse_append(cur, item)
            if step_rows:
                cur.executemany(_APPEND_STEP, step_rows)
            if item.output_step is not None:
                cur.execute(
                    "SELECT state, output IS NOT NULL FROM steps WHERE run_id = %s AND step = %s"
                    " ORDER BY seq DESC LIMIT 1",
                    (run_id, item.output_step),
                )
                last = cur.fetchone()
                if last is None or not is_completed(last[0]) or not last[1]:
                    raise bad_output_step(run_id, item.output_step)

        self._transaction(f"run {run_id}: append", work)

    def _append_one(
        self, cur: Any, item: Append, step_rows: builtins.list[tuple[Any, ...]], *, progress: bool
    ) -> None:
        """``append`` without an output step to check: one statement, in autocommit."""
        if step_rows:
            values = (value for row in step_rows for value in row)
            if progress:  # the state, the run's row only if it changes; see _APPEND_PROGRESS
                state, updated_at = item.run_values[:2]
                params = [state, item.run_id, item.epoch, state, updated_at, item.run_id, *values]
            else:
                params = [*item.run_values, *values]
            cur.execute(_append_one_sql(len(step_rows), progress=progress), params)
            updated = cur.fetchone()[0]
        else:
            cur.execute(_APPEND_RUN, item.run_values)
            updated = cur.rowcount
        if updated != 1:
            self._refuse_append(cur, item)

    @staticmethod
    def _refuse_append(cur: Any, item: Append) -> NoReturn:
        """The run's row was not there to update: StaleEpoch, or a run never started."""
        cur.execute(
            "SELECT epoch, context_len IS NOT NULL FROM runs WHERE run_id = %s", (item.run_id,)
        )
        row = cur.fetchone()
        if row is None or row[0] != item.epoch:
            raise stale_epoch(item.run_id, item.epoch, row and row[0], "append")
        raise PersistenceError(f"run {item.run_id}: cannot append before the run is started")

    def load(self, run_id: str) -> Checkpoint:
        check_run_id(run_id)

        def work(cur: Any) -> tuple[Any, builtins.list[Any]]:
            cur.execute(_LOAD_RUN, (run_id,))
            run_row = cur.fetchone()
            cur.execute(_LOAD_STEPS, (run_id,))
            return run_row, cur.fetchall()

        run_row, step_rows = self._transaction(f"run {run_id}: load", work)
        if run_row is None:
            raise unknown_run(run_id)
        return checkpoint_from_rows(run_id, run_row, step_rows)

    def delete(self, run_id: str, *, epoch: int) -> None:
        def work(cur: Any) -> None:
            cur.execute("SELECT epoch FROM runs WHERE run_id = %s FOR UPDATE", (run_id,))
            row = cur.fetchone()
            if row is None:
                return
            if row[0] != epoch:
                raise stale_epoch(run_id, epoch, row[0], "delete")
            cur.execute("DELETE FROM steps WHERE run_id = %s", (run_id,))
            cur.execute("DELETE FROM runs WHERE run_id = %s", (run_id,))

        self._transaction(f"run {run_id}: delete", work)

    def list(self) -> builtins.list[RunSummary]:
        def work(cur: Any) -> builtins.list[Any]:
            cur.execute(_LIST)
            return list(cur.fetchall())

        return summaries_from_rows(self._transaction("list runs", work, one_statement=True))

    def close(self) -> None:
        self.database.close()
