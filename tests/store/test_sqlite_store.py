"""SQLiteStore specifics: the file, pragmas, schema version, corruption, error translation."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from actors import ManualClock, PersistenceError, RunBusy
from runtime import SQLiteStore
from runtime.store._sqlite import SCHEMA_VERSION  # no public name: the file format's version
from tests.store.store_testkit import append, context_of, header, started, step


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain autocommit connection to tamper with the file behind the store's back."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        yield conn


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def saved_run(db_path: Path) -> Path:
    """A file holding run-1 with a context and two steps."""
    with SQLiteStore(db_path) as store:
        epoch = started(store, "run-1", context={"rows": list(range(100))})
        append(store, "run-1", epoch, step("a", output="out-a"), step("b", output=None))
    return db_path


def test_the_file_is_in_wal_mode_with_the_schema_version_set(db_path: Path) -> None:
    SQLiteStore(db_path).close()
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


@pytest.mark.parametrize(("requested", "level"), [(None, 2), ("normal", 1), ("FULL", 2)])
def test_synchronous_defaults_to_full_and_accepts_normal(
    db_path: Path, requested: str | None, level: int
) -> None:
    store = (
        SQLiteStore(db_path) if requested is None else SQLiteStore(db_path, synchronous=requested)
    )
    with store:
        assert store._conn is not None
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == level


def test_an_unsafe_synchronous_level_is_refused_naming_the_parameter(db_path: Path) -> None:
    with pytest.raises(ValueError, match=r"synchronous must be one of .* got 'OFF'"):
        SQLiteStore(db_path, synchronous="OFF")


def test_the_default_path_is_under_dot_actorflow_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with SQLiteStore() as store:
        assert store.path == tmp_path / ".actorflow" / "state.db"
    assert (tmp_path / ".actorflow" / "state.db").is_file()


def test_checkpoints_survive_closing_and_reopening(saved_run: Path) -> None:
    with SQLiteStore(saved_run) as store:
        loaded = store.load("run-1")
    assert context_of(loaded) == {"rows": list(range(100))}
    assert list(loaded.steps) == ["a", "b"]


def test_a_path_under_a_regular_file_raises_persistence_error_naming_the_path(
    tmp_path: Path,
) -> None:
    # A path below a regular file is unwritable even for root (chmod would not stop root).
    (tmp_path / "afile").write_text("not a directory")
    target = tmp_path / "afile" / "state.db"
    with pytest.raises(PersistenceError, match=re.escape(str(target))) as caught:
        SQLiteStore(target)
    assert isinstance(caught.value.__cause__, OSError)


def test_a_directory_in_place_of_the_file_raises_persistence_error(tmp_path: Path) -> None:
    (tmp_path / "state.db").mkdir()
    with pytest.raises(PersistenceError, match=re.escape("state.db")) as caught:
        SQLiteStore(tmp_path / "state.db")
    assert isinstance(caught.value.__cause__, sqlite3.Error)


def test_a_file_that_is_not_a_database_raises_persistence_error(db_path: Path) -> None:
    db_path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(PersistenceError, match=re.escape(str(db_path))) as caught:
        SQLiteStore(db_path)
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


def test_an_unknown_schema_version_is_refused_on_open(saved_run: Path) -> None:
    with raw(saved_run) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(PersistenceError, match=r"schema version 99.*reads versions 1 to 3"):
        SQLiteStore(saved_run)


def test_a_foreign_database_is_refused_on_open(db_path: Path) -> None:
    with raw(db_path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(PersistenceError, match=r"not an actorflow checkpoint store.*invoices"):
        SQLiteStore(db_path)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("UPDATE runs SET context = x'deadbeef'", "4 bytes, .* were written"),
        ("UPDATE runs SET context = substr(context, 1, length(context) - 5)", "were written"),
        ("UPDATE runs SET context_crc = context_crc + 1", "CRC-32"),
        ("UPDATE runs SET context = 'text'", "context is str, not a blob"),
        ("UPDATE steps SET output = x'00' WHERE step = 'a'", "output of step 'a' fails"),
        ("UPDATE runs SET settings = '{not json'", "settings are not valid JSON"),
        ("UPDATE runs SET settings = '[1]'", "settings are not a JSON object"),
        ("UPDATE runs SET output = x'c0', output_crc = 1", "the run's output fails its CRC-32"),
    ],
)
def test_a_corrupt_row_is_reported_at_load_naming_the_run(
    saved_run: Path, tamper: str, reason: str
) -> None:
    with raw(saved_run) as conn:
        conn.execute(tamper)
    with SQLiteStore(saved_run) as store, pytest.raises(PersistenceError) as caught:
        store.load("run-1")
    assert "run run-1: stored checkpoint is corrupt" in str(caught.value)
    assert re.search(reason, str(caught.value))


def test_sqlite_errors_reach_callers_as_persistence_error_with_the_cause(saved_run: Path) -> None:
    with SQLiteStore(saved_run) as store:
        with raw(saved_run) as conn:
            conn.execute("DROP TABLE steps")
        with pytest.raises(
            PersistenceError, match=r"run run-1: append in .*no such table"
        ) as caught:
            append(store, "run-1", 1, step("x"), state="Completed")
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        # The failed transaction was rolled back: the run row was not half-written.
        with raw(saved_run) as conn:
            assert conn.execute("SELECT state FROM runs").fetchone()[0] == "running"


def test_a_write_lock_held_past_the_busy_timeout_raises_persistence_error(db_path: Path) -> None:
    with SQLiteStore(db_path, busy_timeout=0.1) as store, raw(db_path) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(PersistenceError, match="locked") as caught:
                store.claim("run-1", owner="a", lease=30)
        finally:
            other.execute("ROLLBACK")
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        assert store.claim("run-1", owner="a", lease=30) == 1


def test_two_stores_on_one_file_see_each_others_claims(db_path: Path) -> None:
    clock = ManualClock()
    with SQLiteStore(db_path, clock=clock) as first, SQLiteStore(db_path, clock=clock) as second:
        epoch = first.claim("run-1", owner="a", lease=30)
        with pytest.raises(RunBusy, match="'a'"):
            second.claim("run-1", owner="b", lease=30)
        first.start(header("run-1", context="from first"), epoch=epoch, state="r", updated_at=1)
        assert context_of(second.load("run-1")) == "from first"
        clock.advance(31)
        assert second.claim("run-1", owner="b", lease=30) == 2
        with pytest.raises(PersistenceError, match="epoch 1"):
            append(first, "run-1", epoch, step("zombie"))


def test_a_large_context_is_stored_and_loaded_intact(db_path: Path) -> None:
    context = {"rows": [{"id": index, "name": f"row-{index}"} for index in range(100_000)]}
    with SQLiteStore(db_path) as store:
        started(store, "big", context=context)
        assert context_of(store.load("big")) == context


def test_a_value_sqlite_cannot_bind_is_a_persistence_error(db_path: Path) -> None:
    with SQLiteStore(db_path) as store:
        epoch = started(store, "run-1")
        huge = step("s", attempts=2**70)
        with pytest.raises(PersistenceError, match="run run-1: append") as caught:
            append(store, "run-1", epoch, huge)
        assert isinstance(caught.value.__cause__, OverflowError)
        with pytest.raises(PersistenceError, match="run run-1: append"):
            append(store, "run-1", epoch, state=["not", "text"])  # type: ignore[arg-type]
        with pytest.raises(PersistenceError, match="run run-1: start"):
            store.start(header("run-1"), epoch=epoch, state=["x"], updated_at=1)  # type: ignore[arg-type]
        assert store.load("run-1").steps == {}
