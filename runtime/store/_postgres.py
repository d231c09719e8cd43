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

Connection loss: every call runs in one transaction on a pooled connection.
If the connection breaks (the server restarts, the network blips), the call
is tried again on a new connection until ``reconnect_timeout`` seconds have
passed, then raises ``PersistenceError``. Trying again is safe for every call:
a transaction that broke before its commit wrote nothing, and one whose
commit landed unseen is harmless to repeat (an append records the same step
again and the last record wins; a claim by the same owner takes the next
epoch; renew, release, start and delete are idempotent). So during a restart
the runs' checkpoints wait, then go on.

Errors: ``psycopg`` errors become ``PersistenceError`` naming the server
(password hidden) or the run; a URL that cannot be reached, or a wrong
password, fails the constructor with one line.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from actors import Clock, PersistenceError
from runtime.store._postgres_schema import prepare_schema
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
from runtime.store._sqlite_append import Append
from runtime.store._sqlite_rows import checkpoint_from_rows, summaries_from_rows
from runtime.store._sqlite_schema import crc

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

__all__ = ["PostgresStore", "is_postgres_url", "redact_url"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_URL_SCHEMES: Final = ("postgresql://", "postgres://")
_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_NOW: Final = "extract(epoch from clock_timestamp())::float8"

# One statement (its own transaction, in autocommit): update the run's row if the epoch
# is current, and insert the records only then; one round trip per checkpoint.
_APPEND_ONE: Final = (
    "WITH r AS ("
    "UPDATE runs SET state = %s, updated_at = %s, output = %s, output_crc = %s,"
    " output_step = %s, error = %s, unrecorded = %s"
    " WHERE run_id = %s AND epoch = %s AND context_len IS NOT NULL RETURNING 1),"
    " i AS (INSERT INTO steps (run_id, step, state, attempts, output, output_crc, error,"
    " started_at, finished_at, node) SELECT v.* FROM (VALUES {values}) AS v"
    " WHERE EXISTS (SELECT 1 FROM r) RETURNING 1)"
    " SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM i)"
)
_APPEND_VALUES: Final = (
    "(%s::text, %s::text, %s::text, %s::integer, %s::bytea, %s::bigint, %s::text,"
    " %s::float8, %s::float8, %s::text)"
)
_APPEND_RUN: Final = (
    "UPDATE runs SET state = %s, updated_at = %s, output = %s, output_crc = %s,"
    " output_step = %s, error = %s, unrecorded = %s"
    " WHERE run_id = %s AND epoch = %s AND context_len IS NOT NULL"
)
_APPEND_STEP: Final = (
    "INSERT INTO steps (run_id, step, state, attempts, output, output_crc, error, started_at,"
    " finished_at, node) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
_LOAD_RUN: Final = (
    "SELECT workflow, fingerprint, state, context, context_len, context_crc, epoch,"
    " created_at, updated_at, settings, output, output_crc, output_step, error, unrecorded"
    " FROM runs WHERE run_id = %s"
)
_LOAD_STEPS: Final = (
    "SELECT step, state, attempts, output, output_crc, error, started_at, finished_at, node"
    " FROM steps WHERE run_id = %s ORDER BY seq"
)
_LIST: Final = """
    SELECT r.run_id, r.workflow, r.state, r.epoch, r.owner, r.lease_until,
           r.created_at, r.updated_at, r.context_len IS NOT NULL,
           COUNT(s.step), COUNT(s.step) FILTER (WHERE lower(s.state) = 'completed')
    FROM runs AS r LEFT JOIN (
        SELECT DISTINCT ON (run_id, step) run_id, step, state FROM steps
        ORDER BY run_id, step, seq DESC
    ) AS s ON s.run_id = r.run_id
    GROUP BY r.run_id
    ORDER BY r.created_at, r.run_id
"""


def is_postgres_url(spec: object) -> bool:
    """Whether ``spec`` is a PostgreSQL URL (``postgresql://`` or ``postgres://``)."""
    return isinstance(spec, str) and spec.startswith(_URL_SCHEMES)


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


_PASSWORD: Final = re.compile(r"://[^:/@]*:([^@]*)@")


def _one_line(exc: BaseException, url: str = "") -> str:
    """The first line of ``exc``'s message, with ``url``'s password (if any) hidden."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    password = _PASSWORD.search(url)
    if password and password.group(1):
        text = text.replace(url, redact_url(url)).replace(password.group(1), "***")
    return text


class PostgresStore:
    """A ``CheckpointStore`` in PostgreSQL; thread-safe, shared by processes on many hosts.

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
        if not is_postgres_url(url):
            raise ValueError(
                f"PostgresStore needs a postgresql:// URL, got {redact_url(str(url))!r}"
            )
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema must be a lowercase SQL identifier, got {schema!r}")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size must be an int >= 1, got {pool_size!r}")
        self.url = url
        self.where = redact_url(url) + (f" (schema {schema})" if schema else "")
        self.schema = schema
        self.reconnect_timeout = float(reconnect_timeout)
        self._clock = clock
        self._kwargs: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
        if schema is not None:
            self._kwargs["options"] = f"-c search_path={schema}"
        self._migrate()
        self._pool: psycopg_pool.ConnectionPool[Any] | None = self._open_pool(pool_size)
        log.debug("opened checkpoint store %s", self.where)

    # -- opening -------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        driver = _import_psycopg()
        try:
            conn: psycopg.Connection[tuple[Any, ...]] = driver.connect(self.url, **self._kwargs)
        except driver.Error as exc:
            raise PersistenceError(
                f"cannot connect to PostgreSQL at {self.where}: {_one_line(exc, self.url)}"
            ) from None
        except ValueError as exc:  # a malformed URL
            raise PersistenceError(
                f"bad PostgreSQL URL {self.where}: {_one_line(exc, self.url)}"
            ) from None
        return conn

    def _migrate(self) -> None:
        psycopg = _import_psycopg()
        conn = self._connect()
        try:
            if self.schema is not None:
                with conn.transaction():
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}".encode())
            found = prepare_schema(conn, self.where)
            if found == 0:
                log.info("checkpoint store %s: created the schema", self.where)
        except psycopg.Error as exc:
            raise PersistenceError(
                f"cannot open checkpoint store {self.where}: {_one_line(exc, self.url)}"
            ) from None
        finally:
            conn.close()

    def _open_pool(self, size: int) -> psycopg_pool.ConnectionPool[Any]:
        _import_psycopg()
        import psycopg_pool  # noqa: PLC0415 - optional: the postgres extra

        pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            self.url,
            min_size=1,
            max_size=size,
            kwargs=self._kwargs,
            open=False,
            name="actorflow-store",
            timeout=self.reconnect_timeout,
            reconnect_timeout=max(self.reconnect_timeout, 1.0) * 4,
        )
        pool.open(wait=False)
        return pool

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"

    # -- one transaction, tried again on a broken connection ----------------------------

    def _transaction(
        self, action: str, work: Callable[[Any], T], *, one_statement: bool = False
    ) -> T:
        """Run ``work(cursor)`` in one transaction and commit; see the module docstring.

        ``one_statement``: ``work`` runs a single statement, committed on its own
        (autocommit: no ``BEGIN``/``COMMIT`` round trips), or only reads.
        """
        psycopg = _import_psycopg()
        deadline = time.monotonic() + self.reconnect_timeout
        warned = False
        while True:
            conn = self._connection(action, deadline)
            try:
                return self._attempt(conn, work, one_statement)
            except psycopg.Error as exc:
                if not (conn.broken or conn.closed) or time.monotonic() >= deadline:
                    raise PersistenceError(
                        f"{action} in {self.where}: {_one_line(exc, self.url)}"
                    ) from exc
                if not warned:
                    log.warning(
                        "%s in %s: connection lost (%s); trying again for up to %.0f s",
                        action,
                        self.where,
                        _one_line(exc, self.url),
                        self.reconnect_timeout,
                    )
                    warned = True
                time.sleep(0.1)

    def _connection(self, action: str, deadline: float) -> Any:
        """A pooled connection, waiting until ``deadline`` for one (PersistenceError after)."""
        import psycopg_pool  # noqa: PLC0415 - optional: the postgres extra

        pool = self._pool
        if pool is None:
            raise PersistenceError(f"{action}: checkpoint store {self.where} is closed")
        try:
            return pool.getconn(timeout=max(0.1, deadline - time.monotonic()))
        except psycopg_pool.PoolClosed:
            raise PersistenceError(f"{action}: checkpoint store {self.where} is closed") from None
        except psycopg_pool.PoolTimeout as exc:
            raise PersistenceError(
                f"{action} in {self.where}: the database was unreachable for "
                f"{self.reconnect_timeout:.0f} s: {_one_line(exc, self.url)}"
            ) from None

    def _attempt(self, conn: Any, work: Callable[[Any], T], one_statement: bool) -> T:
        """One try of a transaction on ``conn``, which goes back to the pool whatever happens."""
        pool = self._pool
        try:
            conn.autocommit = one_statement
            with conn.cursor() as cur:
                result = work(cur)
            if not one_statement:
                conn.commit()
            return result
        except BaseException:
            if not conn.broken and not conn.closed and not one_statement:
                _rollback_quietly(conn)
            raise
        finally:
            if not conn.broken and not conn.closed and one_statement:
                with contextlib.suppress(Exception):
                    conn.autocommit = False
            if pool is not None:
                pool.putconn(conn)
            else:
                conn.close()

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
        run_id, context = header.run_id, header.context
        values = (
            header.workflow,
            header.fingerprint,
            context,
            len(context),
            crc(context),
            json.dumps(dict(header.settings), sort_keys=True),
            header.created_at,
            state,
            updated_at,
            run_id,
            epoch,
        )

        def work(cur: Any) -> None:
            cur.execute(
                "UPDATE runs SET workflow = %s, fingerprint = %s, context = %s,"
                " context_len = %s, context_crc = %s, settings = %s, created_at = %s,"
                " state = %s, updated_at = %s, output = NULL, output_crc = NULL,"
                " output_step = NULL, error = NULL, unrecorded = NULL"
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
        if item.output_step is None:  # the common case: one statement, one round trip
            self._transaction(
                f"run {run_id}: append", lambda cur: self._append_one(cur, item), one_statement=True
            )
            return

        def work(cur: Any) -> None:
            cur.execute(_APPEND_RUN, item.run_values)
            if cur.rowcount != 1:
                cur.execute(
                    "SELECT epoch, context_len IS NOT NULL FROM runs WHERE run_id = %s", (run_id,)
                )
                row = cur.fetchone()
                if row is None or row[0] != epoch:
                    raise stale_epoch(run_id, epoch, row and row[0], "append")
                raise PersistenceError(f"run {run_id}: cannot append before the run is started")
            if item.step_rows:
                cur.executemany(_APPEND_STEP, item.step_rows)
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

    def _append_one(self, cur: Any, item: Append) -> None:
        """``append`` without an output step to check: one statement, in autocommit."""
        if item.step_rows:
            values = ", ".join([_APPEND_VALUES] * len(item.step_rows))
            params = [*item.run_values, *(value for row in item.step_rows for value in row)]
            cur.execute(_APPEND_ONE.format(values=values).encode(), params)
            updated = cur.fetchone()[0]
        else:
            cur.execute(_APPEND_RUN, item.run_values)
            updated = cur.rowcount
        if updated != 1:
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
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        """Connection options besides the URL (a connection of one's own: LISTEN)."""
        return dict(self._kwargs)


def _rollback_quietly(conn: Any) -> None:
    try:
        conn.rollback()
    except Exception:  # a rollback that fails leaves the connection broken: the pool drops it
        log.debug("rollback failed", exc_info=True)


def _import_psycopg() -> Any:
    try:
        import psycopg  # noqa: PLC0415 - optional: the postgres extra
        import psycopg_pool  # noqa: F401, PLC0415 - checked here, imported where used
    except ImportError:
        raise PersistenceError(
            "a postgresql:// store needs psycopg: pip install 'actorflow[postgres]'"
        ) from None
    return psycopg
