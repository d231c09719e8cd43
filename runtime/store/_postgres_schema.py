"""The PostgreSQL schema of ``PostgresStore``: numbered migrations, applied in order.

``actorflow_schema`` holds one row, the version the tables are at. Opening a
store runs, in one transaction under a transaction-scoped advisory lock (so
processes opening the same database at once apply each migration exactly
once), every migration above the stored version. A database at a version
newer than this release knows is refused, never written.

Version 1 (the same shape as the SQLite file's version 3)::

    runs    one row per run: epoch and lease (lease_until in seconds since the
            epoch, *database* time); the header (workflow, fingerprint, context
            with its length and CRC-32, settings as JSON, created_at); state,
            updated_at and outcome, updated by every append.
    steps   one row per appended record, seq = append order; the last record
            of a step wins; node names where its attempt ran. Indexed by
            (run_id, step, seq).

Version 2 adds what the locks on the store need (``runtime.store._postgres_locks``)::

    store_locks       one row per held lock: name, token, owner, lease_until.
    store_lock_tokens the sequence every fencing token is drawn from.
    runs_unfinished   a partial index of runs an adopter may look at.

Version 3 adds ``actor_state`` (``runtime.store._postgres_actors``): a fenced
lease and the last snapshot per actor key (supervised children, singletons).

Version 4 adds ``steps.appended_at``, the ``updated_at`` of the append that
wrote the row, and ``runs.steps_seq``, the highest ``steps.seq`` (of any run)
when a ``start`` or an append without records last wrote the run's row. An
append that leaves the run's state and outcome as they are (a step's
checkpoint, the common case) no longer rewrites the ``runs`` row; a reader
takes the run's ``updated_at`` from its latest record (highest ``seq``) if that
was written after the row (``seq > steps_seq``) and has one (NULL in rows
written before), else from the row. So it is what the run's last write said,
as in the other stores, even when that host's clock was behind.

Version 5 adds the queue of lock waiters (``runtime.store._postgres_locks``)::

    store_lock_queue    one row per waiting acquire: the lock's name, its
                        ticket (arrival order) and how long it is still
                        waiting for (seen_until, database time, refreshed
                        while it waits; a waiter gone quiet stops counting).
    store_lock_tickets  the sequence the tickets are drawn from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from actors import PersistenceError

if TYPE_CHECKING:
    import psycopg

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "prepare_schema"]

_ADVISORY_KEY: Final = 0x61637466_6C6F77  # "actflow": serialises concurrent migrations

_V1: Final = (
    """
    CREATE TABLE runs (
        run_id       TEXT PRIMARY KEY,
        epoch        BIGINT NOT NULL,      -- fencing token, bumped by every claim
        owner        TEXT,
        lease_until  DOUBLE PRECISION,     -- database time, seconds since 1970
        workflow     TEXT,                 -- the header: NULL until start
        fingerprint  TEXT,
        context      BYTEA,
        context_len  BIGINT,               -- length and CRC-32 of context, checked by load
        context_crc  BIGINT,
        settings     TEXT,                 -- JSON object of str -> str
        created_at   DOUBLE PRECISION NOT NULL,
        state        TEXT,
        updated_at   DOUBLE PRECISION NOT NULL,
        output       BYTEA,
        output_crc   BIGINT,
        output_step  TEXT,
        error        TEXT,
        unrecorded   TEXT
    )
    """,
    """
    CREATE TABLE steps (
        seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id       TEXT NOT NULL,
        step         TEXT NOT NULL,
        state        TEXT NOT NULL,
        attempts     INTEGER NOT NULL,
        output       BYTEA,
        output_crc   BIGINT,
        error        TEXT,
        started_at   DOUBLE PRECISION,
        finished_at  DOUBLE PRECISION,
        node         TEXT                  -- where the recorded attempt ran
    )
    """,
    "CREATE INDEX steps_by_run ON steps (run_id, step, seq)",
)

_V2: Final = (
    """
    CREATE TABLE store_locks (
        name         TEXT PRIMARY KEY,
        token        BIGINT NOT NULL,
        owner        TEXT NOT NULL,
        lease_until  DOUBLE PRECISION NOT NULL  -- database time
    )
    """,
    "CREATE SEQUENCE store_lock_tokens AS BIGINT",
    "CREATE INDEX runs_unfinished ON runs (lease_until) WHERE state IN ('Running', 'Pending')",
)

_V3: Final = (
    """
    CREATE TABLE actor_state (
        key          TEXT PRIMARY KEY,
        epoch        BIGINT NOT NULL,      -- fencing token, bumped by every claim
        owner        TEXT,
        lease_until  DOUBLE PRECISION,     -- database time
        state        BYTEA,                -- the last snapshot, encoded by the value codec
        state_crc    BIGINT,
        state_epoch  BIGINT,               -- the epoch whose incarnation wrote it
        updated_at   DOUBLE PRECISION
    )
    """,
)

_V4: Final = (
    "ALTER TABLE steps ADD COLUMN appended_at DOUBLE PRECISION",
    "ALTER TABLE runs ADD COLUMN steps_seq BIGINT",
)

_V5: Final = (
    """
    CREATE TABLE store_lock_queue (
        name         TEXT NOT NULL,
        ticket       BIGINT NOT NULL,
        seen_until   DOUBLE PRECISION NOT NULL,  -- database time
        PRIMARY KEY (name, ticket)
    )
    """,
    "CREATE SEQUENCE store_lock_tickets AS BIGINT",
)

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_V1, _V2, _V3, _V4, _V5)
"""``MIGRATIONS[n - 1]`` takes the schema from version ``n - 1`` to ``n``."""

SCHEMA_VERSION: Final = len(MIGRATIONS)


def prepare_schema(
    conn: psycopg.Connection[tuple[object, ...]], where: str, *, schema: str | None = None
) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; return the version it was at (0: empty).

    ``schema`` (a checked identifier, the connection's ``search_path``) is created
    first if missing, under the same lock: PostgreSQL's ``CREATE SCHEMA IF NOT
    EXISTS`` run by several sessions at once fails in all but one.

    Raises:
        PersistenceError: the schema is newer than this release knows.
        psycopg.Error: the database refused (the caller translates it).
    """
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_KEY,))
        if schema is not None:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}".encode())
        cur.execute(
            "CREATE TABLE IF NOT EXISTS actorflow_schema ("
            " only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),"
            " version INTEGER NOT NULL)"
        )
        cur.execute("SELECT version FROM actorflow_schema")
        row = cur.fetchone()
        found = int(str(row[0])) if row is not None else 0
        if found > SCHEMA_VERSION:
            raise PersistenceError(
                f"checkpoint store {where} has schema version {found}; this actorflow "
                f"knows versions up to {SCHEMA_VERSION} (written by a newer release?)"
            )
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                cur.execute(statement.encode())
        if found == 0:
            cur.execute("INSERT INTO actorflow_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
        elif found < SCHEMA_VERSION:
            cur.execute("UPDATE actorflow_schema SET version = %s", (SCHEMA_VERSION,))
        return found
