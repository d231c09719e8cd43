"""A file written by the version-1 store still opens, lists, loads, shows and resumes.

``fixtures/v1.db`` was written by the code of commit 9d90c0b (schema version 1;
``fixtures/make_v1_db.py`` says how). Each test works on a copy: opening it
migrates the copy in place.
"""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    CheckpointStrategy,
    PermanentError,
    PersistenceError,
    SQLiteStore,
    Workflow,
    task,
)
from runtime.store import decode_value, encode_value, replay_from
from tests.support import actorflow

pytestmark = pytest.mark.timeout(30)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "v1.db"
BROKEN: set[str] = set()  # steps that raise (the fixture's Failed run broke at b)
RAN: list[str] = []


def _step(name: str) -> Workflow[dict[str, Any], Any]:
    def body(ctx: dict[str, Any]) -> Any:
        RAN.append(name)
        if name in BROKEN:
            raise PermanentError(f"{name} is broken")
        ctx[name] = ctx.get("n", 0) * 10
        return name.upper() if name != "c" else {"final": ctx["n"], "span": (1, 2)}

    return task(body, name=name)


def v1_chain() -> Workflow[dict[str, Any], Any]:
    """The workflow of every run in the fixture (same name and fingerprint)."""
    return _step("a").then(_step("b")).then(_step("c")).named("v1-chain")


def fresh_copy(fixture: Path, tmp_path: Path) -> Path:
    """A copy of ``fixture`` to open (opening migrates it in place); ``RAN`` emptied."""
    copy = tmp_path / "state.db"
    shutil.copyfile(fixture, copy)
    RAN.clear()
    return copy


@pytest.fixture
def v1_db(tmp_path: Path) -> Path:
    return fresh_copy(FIXTURE, tmp_path)


def test_a_version_1_file_lists_every_run(v1_db: Path) -> None:
    with SQLiteStore(v1_db) as store:
        runs = {s.run_id: s for s in store.list()}
    assert set(runs) == {"v1-done", "v1-failed", "v1-interrupted"}
    done, failed, interrupted = runs["v1-done"], runs["v1-failed"], runs["v1-interrupted"]
    assert (done.state, done.steps_total, done.steps_completed) == ("Completed", 3, 3)
    assert (failed.state, failed.steps_total, failed.steps_completed) == ("Failed", 2, 1)
    assert (interrupted.state, interrupted.steps_total, interrupted.steps_completed) == (
        "Running",
        2,
        1,
    )
    assert interrupted.owner == "somehost:999999:dead"
    assert all(s.workflow == "v1-chain" and s.has_checkpoint for s in runs.values())


def test_a_version_1_file_loads_steps_context_and_outcomes(v1_db: Path) -> None:
    with SQLiteStore(v1_db) as store:
        done = store.load("v1-done")
        failed = store.load("v1-failed")
        interrupted = store.load("v1-interrupted")
    assert decode_value(done.context, what="context") == {"n": 1}
    assert list(done.steps) == ["a", "b", "c"]
    assert replay_from(done).completed["c"] == (
        {"final": 1, "span": (1, 2)},
        {"n": 1, "a": 10, "b": 10, "c": 10},
    )
    assert [(k, r.state) for k, r in failed.steps.items()] == [("a", "Completed"), ("b", "Failed")]
    assert failed.steps["b"].error is not None and "b is broken" in failed.steps["b"].error
    assert [(k, r.state) for k, r in interrupted.steps.items()] == [
        ("a", "Completed"),
        ("b", "Running"),
    ]
    assert all(r.node is None for c in (done, failed, interrupted) for r in c.steps.values())


def test_a_version_1_outcome_reads_back_in_process_and_in_the_cli(v1_db: Path) -> None:
    with ActorSystem("v1", store=SQLiteStore(v1_db)) as system:
        assert system.stored_result("v1-done") == {"final": 1, "span": (1, 2)}
        with pytest.raises(PersistenceError, match=r"is Failed \(.*b is broken"):
            system.stored_result("v1-failed")
    shown = actorflow("show", "v1-done", "--db", str(v1_db))
    assert shown.returncode == 0, shown.stderr
    assert "outcome    {'final': 1, 'span': (1, 2)}" in shown.stdout


def test_version_1_runs_resume_from_their_recorded_steps(v1_db: Path) -> None:
    with ActorSystem(
        "v1",
        store=SQLiteStore(v1_db),
        checkpoint=CheckpointStrategy.AFTER_EACH_STEP,
        workflows=[v1_chain()],
    ) as system:
        assert system.resume("v1-failed", v1_chain()).result(10) == {"final": 2, "span": (1, 2)}
        assert RAN == ["b", "c"]
        RAN.clear()
        [handle] = system.recover()  # the interrupted run: its owner is dead, its lease over
        assert handle.id == "v1-interrupted"
        assert handle.result(10) == {"final": 3, "span": (1, 2)}
        assert RAN == ["b", "c"]
        assert system.stored_result("v1-interrupted") == {"final": 3, "span": (1, 2)}
    with SQLiteStore(v1_db) as store:
        states = {s.run_id: (s.state, s.steps_completed) for s in store.list()}
    assert states == {
        "v1-done": ("Completed", 3),
        "v1-failed": ("Completed", 3),
        "v1-interrupted": ("Completed", 3),
    }


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def test_opening_a_version_1_file_migrates_it_to_version_3_in_place(v1_db: Path) -> None:
    with closing(sqlite3.connect(v1_db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        old_steps = conn.execute("SELECT run_id, key, state FROM steps ORDER BY rowid").fetchall()
    SQLiteStore(v1_db).close()
    with closing(sqlite3.connect(v1_db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {"runs", "steps", "steps_by_run"} <= tables
        assert not {"runs_v2", "steps_v2"} & tables
        assert "meta" not in columns(conn, "runs")
        assert {"settings", "output", "output_step", "unrecorded"} <= set(columns(conn, "runs"))
        assert "node" in columns(conn, "steps")
        new_steps = conn.execute("SELECT run_id, step, state FROM steps ORDER BY seq").fetchall()
        output, error = conn.execute(
            "SELECT output, error FROM runs WHERE run_id = 'v1-done'"
        ).fetchone()
    assert new_steps == old_steps  # every record, in its order
    # The base64 text in meta became the encoded output itself, stored once as a blob.
    assert output == encode_value({"final": 1, "span": (1, 2)}, what="expected output")
    assert error is None
    SQLiteStore(v1_db).close()  # opening again changes nothing
    with closing(sqlite3.connect(v1_db)) as conn:
        assert conn.execute("SELECT step FROM steps ORDER BY seq").fetchall() == [
            (step,) for _, step, _ in new_steps
        ]


def test_a_migration_that_fails_leaves_the_version_1_file_as_it_was(v1_db: Path) -> None:
    with closing(sqlite3.connect(v1_db, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE runs_v2 (x)")  # the migration's scratch name, taken
    before = v1_db.read_bytes()
    with pytest.raises(PersistenceError, match=r"cannot open .*runs_v2 already exists"):
        SQLiteStore(v1_db)
    assert v1_db.read_bytes() == before
    with closing(sqlite3.connect(v1_db, isolation_level=None)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert "meta" in columns(conn, "runs")
        conn.execute("DROP TABLE runs_v2")
    with SQLiteStore(v1_db) as store:
        assert len(store.list()) == 3


def test_an_unreadable_version_1_outcome_is_noted_not_fatal(v1_db: Path) -> None:
    with closing(sqlite3.connect(v1_db, isolation_level=None)) as conn:
        conn.execute("UPDATE runs SET meta = '{not json' WHERE run_id = 'v1-done'")
    with ActorSystem("v1", store=SQLiteStore(v1_db)) as system:
        assert len(system.runs()) == 3
        with pytest.raises(
            PersistenceError, match=r"not recorded: the version 1 record of the outcome"
        ):
            system.stored_result("v1-done")
