"""A file written by the version-2 store opens as version 3, loads, shows and resumes.

``fixtures/v2.db`` was written by the code of commit 4a63da6 (schema version 2,
no record of the node a step ran on; ``fixtures/make_v2_db.py`` says how). Each
test works on a copy: opening it migrates the copy in place.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from runtime import ActorSystem, CheckpointStrategy, PersistenceError, SQLiteStore
from runtime.store import replay_from
from tests.store.test_v1_fixture import RAN, columns, fresh_copy, v1_chain
from tests.support import actorflow

pytestmark = pytest.mark.timeout(30)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "v2.db"


@pytest.fixture
def v2_db(tmp_path: Path) -> Path:
    return fresh_copy(FIXTURE, tmp_path)


def test_opening_a_version_2_file_adds_the_node_column_in_place(v2_db: Path) -> None:
    with closing(sqlite3.connect(v2_db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert "node" not in columns(conn, "steps")
        old_steps = conn.execute("SELECT run_id, step, state FROM steps ORDER BY seq").fetchall()
    SQLiteStore(v2_db).close()
    with closing(sqlite3.connect(v2_db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert "node" in columns(conn, "steps")
        new_steps = conn.execute(
            "SELECT run_id, step, state, node FROM steps ORDER BY seq"
        ).fetchall()
    assert new_steps == [(*row, None) for row in old_steps]  # every record, in its order
    SQLiteStore(v2_db).close()  # opening again changes nothing
    with closing(sqlite3.connect(v2_db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3


def test_a_version_2_file_lists_and_loads_with_no_node_recorded(v2_db: Path) -> None:
    with SQLiteStore(v2_db) as store:
        runs = {s.run_id: (s.state, s.steps_total, s.steps_completed) for s in store.list()}
        done = store.load("v2-done")
        failed = store.load("v2-failed")
    assert runs == {
        "v2-done": ("Completed", 3, 3),
        "v2-failed": ("Failed", 2, 1),
        "v2-interrupted": ("Running", 2, 1),
    }
    assert list(done.steps) == ["a", "b", "c"]
    assert done.outcome is not None and done.outcome.output_step == "c"
    assert replay_from(done).completed["c"][0] == {"final": 1, "span": (1, 2)}
    assert failed.steps["b"].error is not None and "b is broken" in failed.steps["b"].error
    assert all(r.node is None for c in (done, failed) for r in c.steps.values())


def test_a_version_2_run_shows_no_node_in_text_and_null_in_json(v2_db: Path) -> None:
    shown = actorflow("show", "v2-done", "--db", str(v2_db))
    assert shown.returncode == 0, shown.stderr
    assert "outcome    {'final': 1, 'span': (1, 2)}" in shown.stdout
    as_json = actorflow("show", "v2-done", "--db", str(v2_db), "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert [s["node"] for s in json.loads(as_json.stdout)["steps"]] == [None, None, None]


def test_version_2_runs_resume_and_record_the_node_of_the_new_steps(v2_db: Path) -> None:
    with ActorSystem(
        "resumer",
        store=SQLiteStore(v2_db),
        checkpoint=CheckpointStrategy.AFTER_EACH_STEP,
        workflows=[v1_chain()],
    ) as system:
        [handle] = system.recover()  # the interrupted run: its owner is dead, its lease over
        assert handle.id == "v2-interrupted"
        assert handle.result(10) == {"final": 3, "span": (1, 2)}
        assert RAN == ["b", "c"]
        with pytest.raises(PersistenceError, match=r"is Failed \(.*b is broken"):
            system.stored_result("v2-failed")
    with SQLiteStore(v2_db) as store:
        steps = store.load("v2-interrupted").steps
    assert {k: r.node for k, r in steps.items()} == {"a": None, "b": "resumer", "c": "resumer"}
