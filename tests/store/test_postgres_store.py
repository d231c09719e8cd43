"""What only ``PostgresStore`` does: database time, adoption claims, migrations, clear errors.

The contract it shares with every store is in ``test_conformance.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from actors import ManualClock, PersistenceError, StaleEpoch
from examples.embedded_postgres import EmbeddedPostgres
from runtime import ActorSystem, CheckpointStrategy, task
from runtime.store import PostgresStore, encode_value
from runtime.store._postgres_schema import MIGRATIONS, SCHEMA_VERSION
from runtime.store._sqlite_schema import crc
from tests.store.store_testkit import append, header, started, step
from tests.support import actorflow, wait_until


@pytest.fixture
def store(postgres_url: str, postgres_schema: str) -> Iterator[PostgresStore]:
    with PostgresStore(postgres_url, schema=postgres_schema) as opened:
        yield opened


# --- time -----------------------------------------------------------------------------------


def test_leases_are_measured_on_the_database_clock(store: PostgresStore) -> None:
    before = store.now()
    store.claim("run-1", owner="a", lease=30)
    after = store.now()
    [summary] = store.list()
    assert summary.lease_until is not None
    assert before + 30 <= summary.lease_until <= after + 30


def test_a_member_whose_own_clock_is_decades_off_still_holds_live_leases(
    postgres_url: str, postgres_schema: str
) -> None:
    far_past = ManualClock(wall_start=0.0)  # this host believes it is 1970
    flow = task(lambda ctx: ctx + 1, name="inc").named("skewed")
    with (
        PostgresStore(postgres_url, schema=postgres_schema) as store,
        ActorSystem(
            "skewed", clock=far_past, store=store, checkpoint=CheckpointStrategy.AFTER_EACH_STEP
        ) as system,
    ):
        system.run(flow, 1, run_id="skewed-run").result(timeout=30)
        now = store.now()
        epoch = store.claim("other", owner="x", lease=10)
        [summary] = [s for s in store.list() if s.run_id == "other"]
        assert epoch == 1
        assert summary.lease_until is not None and summary.lease_until > now  # not 1970 + 10
        assert store.load("skewed-run").state == "Completed"


# --- adoption claims --------------------------------------------------------------------------


def _orphan(store: PostgresStore, run_id: str, *, workflow_state: str = "running") -> None:
    """A started run whose owner's lease has already run out (a lease of a millisecond)."""
    epoch = store.claim(run_id, owner="gone", lease=0.001)
    store.start(header(run_id), epoch=epoch, state="Running", updated_at=1.0)
    append(store, run_id, epoch, step("s1", output=1), state=workflow_state.title())


def test_claim_orphan_takes_an_expired_run_and_bumps_its_epoch(store: PostgresStore) -> None:
    _orphan(store, "run-1")
    assert store.claim_orphan(owner="b", lease=30, workflows=["etl"]) == ("run-1", 2)
    assert store.claim_orphan(owner="c", lease=30, workflows=["etl"]) is None  # b holds it now
    [summary] = store.list()
    assert (summary.owner, summary.epoch) == ("b", 2)


def test_claim_orphan_passes_over_live_unstarted_finished_foreign_and_skipped_runs(
    store: PostgresStore,
) -> None:
    started(store, "live")  # a 30 s lease
    store.claim("never-started", owner="gone", lease=0.001)
    _orphan(store, "finished", workflow_state="completed")
    _orphan(store, "skipped")
    assert store.claim_orphan(owner="b", lease=30, workflows=["etl"], skip=["skipped"]) is None
    assert store.claim_orphan(owner="b", lease=30, workflows=["other"]) is None
    assert store.claim_orphan(owner="b", lease=30, workflows=[]) is None


def test_adopters_racing_on_separate_connections_never_take_the_same_run(
    postgres_url: str, postgres_schema: str
) -> None:
    with PostgresStore(postgres_url, schema=postgres_schema) as setup:
        for index in range(3):
            _orphan(setup, f"run-{index}")
    stores = [PostgresStore(postgres_url, schema=postgres_schema) for _ in range(8)]
    barrier = threading.Barrier(len(stores), timeout=10)

    def adopt(number: int) -> list[str]:
        barrier.wait()
        taken = []
        while claimed := stores[number].claim_orphan(
            owner=f"o{number}", lease=30, workflows=["etl"]
        ):
            taken.append(claimed[0])
        return taken

    try:
        with ThreadPoolExecutor(max_workers=len(stores)) as pool:
            taken = [
                run for runs in pool.map(adopt, range(len(stores)), timeout=30) for run in runs
            ]
    finally:
        for opened in stores:
            opened.close()
    assert sorted(taken) == ["run-0", "run-1", "run-2"]  # each exactly once


# --- schema ---------------------------------------------------------------------------------


def _schema_at(url: str, schema: str, version: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}".encode())
        conn.execute(f"SET search_path = {schema}".encode())
        conn.execute(
            b"CREATE TABLE actorflow_schema (only_row BOOLEAN PRIMARY KEY DEFAULT TRUE,"
            b" version INTEGER NOT NULL)"
        )
        for migration in MIGRATIONS[: min(version, SCHEMA_VERSION)]:
            for statement in migration:
                conn.execute(statement.encode())
        conn.execute(b"INSERT INTO actorflow_schema (version) VALUES (%s)", (version,))


def test_a_schema_at_version_1_is_migrated_and_keeps_its_runs(
    postgres_url: str, postgres_schema: str
) -> None:
    _schema_at(postgres_url, postgres_schema, 1)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"SET search_path = {postgres_schema}".encode())
        conn.execute(
            b"INSERT INTO runs (run_id, epoch, created_at, updated_at) VALUES ('old', 3, 1, 1)"
        )
    with PostgresStore(postgres_url, schema=postgres_schema) as store:
        assert [(s.run_id, s.epoch) for s in store.list()] == [("old", 3)]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"SET search_path = {postgres_schema}".encode())
        version = conn.execute(b"SELECT version FROM actorflow_schema").fetchone()
        tables = conn.execute(
            b"SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = 'store_locks'",
            (postgres_schema,),
        ).fetchone()
    assert version == (SCHEMA_VERSION,)
    assert tables == (1,)


def _sql(
    url: str, schema: str, statement: str, params: tuple[object, ...] = ()
) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET search_path = {schema}".encode())
        cur = conn.execute(statement.encode(), params or None)
        return cur.fetchall() if cur.description else []


def test_a_schema_at_version_3_is_migrated_and_its_steps_keep_loading(
    postgres_url: str, postgres_schema: str
) -> None:
    """Rows written before steps had ``appended_at`` (NULL) load; the run's row dates them."""
    _schema_at(postgres_url, postgres_schema, 3)
    context = encode_value({}, what="test context")
    _sql(
        postgres_url,
        postgres_schema,
        "INSERT INTO runs (run_id, epoch, workflow, fingerprint, context, context_len,"
        " context_crc, settings, created_at, state, updated_at)"
        " VALUES ('old', 2, 'etl', 'fp-1', %s, %s, %s, '{}', 1, 'running', 7)",
        (context, len(context), crc(context)),
    )
    _sql(
        postgres_url,
        postgres_schema,
        "INSERT INTO steps (run_id, step, state, attempts, started_at, finished_at)"
        " VALUES ('old', 'a', 'completed', 1, 2, 3)",
    )
    with PostgresStore(postgres_url, schema=postgres_schema) as store:
        loaded = store.load("old")
        assert (list(loaded.steps), loaded.updated_at) == (["a"], 7.0)
        append(store, "old", 2, step("b"), updated_at=9.0)
        [summary] = store.list()
        assert (store.load("old").updated_at, summary.updated_at) == (9.0, 9.0)


def test_a_step_checkpoint_leaves_the_run_row_alone_but_moves_updated_at(
    store: PostgresStore, postgres_url: str, postgres_schema: str
) -> None:
    """The common append writes one steps row; the run's row is rewritten only on a change."""
    epoch = started(store, "run-1")
    version = "SELECT xmin::text FROM runs WHERE run_id = 'run-1'"
    [before] = _sql(postgres_url, postgres_schema, version)
    append(store, "run-1", epoch, step("a"), updated_at=150.0)
    append(store, "run-1", epoch, step("b"), updated_at=160.0)
    [after_steps] = _sql(postgres_url, postgres_schema, version)
    [summary] = store.list()
    assert after_steps == before
    assert (store.load("run-1").updated_at, summary.updated_at) == (160.0, 160.0)
    append(store, "run-1", epoch, step("c"), state="Paused", updated_at=170.0)
    [after_pause] = _sql(postgres_url, postgres_schema, version)
    loaded = store.load("run-1")
    assert after_pause != before
    assert (loaded.state, loaded.updated_at) == ("Paused", 170.0)
    assert list(loaded.steps) == ["a", "b", "c"]


@pytest.mark.timeout(60)
def test_an_append_racing_a_claim_in_progress_waits_for_it_and_is_fenced(
    store: PostgresStore, postgres_url: str, postgres_schema: str
) -> None:
    """The owner appends while an adopter's claim (bumping the epoch) is not yet committed:
    the append waits for the claim's commit, then sees the new epoch and writes nothing."""
    epoch = started(store, "run-1")
    with psycopg.connect(postgres_url) as adopter:
        adopter.execute(f"SET search_path = {postgres_schema}".encode())
        adopter.execute(b"UPDATE runs SET epoch = epoch + 1, owner = 'b' WHERE run_id = 'run-1'")
        outcome: list[BaseException | None] = []
        appending = threading.Thread(
            target=lambda: outcome.append(_append_caught(store, epoch)), daemon=True
        )
        appending.start()
        _wait_for_lock_waits(postgres_url, postgres_schema, 1, "the append never waited")
        assert outcome == []  # still waiting on the claim's row lock
        adopter.commit()
    appending.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], StaleEpoch)
    assert list(store.load("run-1").steps) == []


def _wait_for_lock_waits(url: str, schema: str, count: int, failure: str) -> None:
    """Until ``count`` sessions wait on a row lock (30 s at most, then ``failure``)."""
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    assert wait_until(lambda: _sql(url, schema, waiting) == [(count,)], 30), failure


def _append_caught(
    store: PostgresStore, epoch: int, key: str = "zombie", state: str = "running"
) -> BaseException | None:
    try:
        append(store, "run-1", epoch, step(key), state=state)
    except BaseException as exc:  # the test looks at what was raised
        return exc
    return None


@pytest.mark.timeout(60)
def test_two_appends_changing_the_state_at_once_both_land(
    store: PostgresStore, postgres_url: str, postgres_schema: str
) -> None:
    """Two writers at one epoch (the store is thread-safe): both lock the run's row before
    rewriting it. Had each only share-locked it, each would wait for the other's lock."""
    epoch = started(store, "run-1")
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"SET search_path = {postgres_schema}".encode())
        admin.execute(  # a step row waits for the test's advisory lock once the row is locked
            b"CREATE FUNCTION wait_for_test() RETURNS trigger LANGUAGE plpgsql AS"
            b" $$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NEW; END $$"
        )
        admin.execute(
            b"CREATE TRIGGER wait_for_test BEFORE INSERT ON steps"
            b" FOR EACH ROW EXECUTE FUNCTION wait_for_test()"
        )
        with admin.transaction():
            admin.execute(b"SELECT pg_advisory_xact_lock(4242)")
            outcomes: list[BaseException | None] = []
            writers = [
                threading.Thread(
                    target=lambda key=key: outcomes.append(
                        _append_caught(store, epoch, key, state="Paused")
                    ),
                    daemon=True,
                )
                for key in ("a", "b")
            ]
            for writer in writers:
                writer.start()
            _wait_for_lock_waits(postgres_url, postgres_schema, 2, "the appends never both waited")
        for writer in writers:
            writer.join(30)
    assert outcomes == [None, None]
    loaded = store.load("run-1")
    assert (loaded.state, sorted(loaded.steps)) == ("Paused", ["a", "b"])


@pytest.mark.timeout(120)
def test_hosts_opening_a_new_schema_at_once_all_open_it(postgres_url: str) -> None:
    """Several members started together on an empty schema: none fails to create it."""
    import uuid

    def open_at_once(schema: str, barrier: threading.Barrier) -> str | None:
        barrier.wait(30)
        try:
            PostgresStore(postgres_url, schema=schema).close()
        except PersistenceError as exc:
            return str(exc)
        return None

    for _ in range(10):  # the race is narrow: several rounds make losing it near certain
        schema, barrier = f"t_{uuid.uuid4().hex[:12]}", threading.Barrier(6)
        with ThreadPoolExecutor(6) as pool:
            errors = list(pool.map(open_at_once, [schema] * 6, [barrier] * 6))
        assert errors == [None] * 6, next(e for e in errors if e)


def test_a_schema_of_a_newer_release_is_refused_naming_the_version(
    postgres_url: str, postgres_schema: str
) -> None:
    _schema_at(postgres_url, postgres_schema, 99)
    with pytest.raises(PersistenceError, match=rf"schema version 99.*up to {SCHEMA_VERSION}"):
        PostgresStore(postgres_url, schema=postgres_schema)


# --- errors: one line each, no password -----------------------------------------------------


def test_an_unreachable_server_is_one_clear_line() -> None:
    with pytest.raises(PersistenceError) as error:
        PostgresStore("postgresql://app:s3cret@127.0.0.1:1/flows", connect_timeout=2)
    message = str(error.value)
    assert message.startswith("cannot connect to PostgreSQL at postgresql://app:***@127.0.0.1:1")
    assert "\n" not in message and "s3cret" not in message


def test_a_malformed_url_is_one_clear_line_without_the_password() -> None:
    with pytest.raises(PersistenceError) as error:
        PostgresStore("postgresql://app:s3cret@[::1/flows")
    assert "\n" not in str(error.value) and "s3cret" not in str(error.value)


def test_a_password_given_as_a_query_parameter_is_never_shown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from runtime.store import redact_url

    url = "postgresql://app@127.0.0.1:1/flows?connect_timeout=1&password=s3cret&sslmode=disable"
    assert "s3cret" not in redact_url(url)
    assert redact_url(url).endswith("password=***&sslmode=disable")
    caplog.set_level("DEBUG")
    with pytest.raises(PersistenceError) as error:
        PostgresStore(url, connect_timeout=1)
    assert "s3cret" not in str(error.value) and "\n" not in str(error.value)
    assert "s3cret" not in caplog.text


def test_a_wrong_password_is_one_clear_line(postgres_server: EmbeddedPostgres) -> None:
    postgres_server.sql(
        "DO $$ BEGIN CREATE ROLE pw_user LOGIN PASSWORD 'right';"
        " EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    postgres_server.require_password_for("pw_user")
    url = postgres_server.url.replace("postgres:@", "pw_user:wrong@")
    with pytest.raises(PersistenceError) as error:
        PostgresStore(url)
    message = str(error.value)
    assert "password authentication failed" in message
    assert "\n" not in message and "wrong" not in message


def test_actor_system_and_cli_refuse_a_bad_url_in_one_line() -> None:
    with pytest.raises(PersistenceError, match="cannot connect to PostgreSQL"):
        ActorSystem("bad", store="postgresql://app:s3cret@127.0.0.1:1/flows")
    result = actorflow("runs", "--db", "postgresql://app:s3cret@127.0.0.1:1/flows")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("actorflow runs: cannot connect to PostgreSQL")
    assert "s3cret" not in result.stderr


def test_the_db_environment_variable_takes_a_url(store: PostgresStore, postgres_url: str) -> None:
    started(store, "via-env")
    url = f"{postgres_url}&options=-c%20search_path%3D{store.schema}"
    result = actorflow("runs", env={"ACTORFLOW_DB": url})
    assert result.returncode == 0, result.stderr
    assert "via-env" in result.stdout
