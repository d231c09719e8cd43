"""A finished run's outcome is recorded: stored_result() and `actorflow show` read it back."""

from __future__ import annotations

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
    task,
)
from tests.support import actorflow

pytestmark = pytest.mark.timeout(30)
AFTER_EACH = CheckpointStrategy.AFTER_EACH_STEP


def system_on(db: Path) -> ActorSystem:
    return ActorSystem("outcome", store=SQLiteStore(db), checkpoint=AFTER_EACH)


def test_another_process_reads_the_output_of_a_completed_run(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with system_on(db) as system:
        handle = system.run(task(lambda ctx: {"rows": 3, "span": (1, 2)}, name="count"), {})
        assert handle.result(5) == {"rows": 3, "span": (1, 2)}
    with system_on(db) as later:  # a fresh system on the same file, as another process would
        assert later.stored_result(handle.id) == {"rows": 3, "span": (1, 2)}
    shown = actorflow("show", handle.id, "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    assert "outcome    {'rows': 3, 'span': (1, 2)}" in shown.stdout


def test_a_failed_run_has_no_output_and_says_why(tmp_path: Path) -> None:
    db = tmp_path / "state.db"

    def broken(ctx: Any) -> None:
        raise PermanentError("the input is bad")

    with system_on(db) as system:
        handle = system.run(task(broken), {})
        with pytest.raises(PermanentError):
            handle.result(5)
        with pytest.raises(
            PersistenceError, match=r"is Failed \(.*PermanentError: the input is bad"
        ):
            system.stored_result(handle.id)
    shown = actorflow("show", handle.id, "--db", str(db))
    assert "PermanentError: the input is bad): it has no output" in shown.stdout


def test_an_output_that_cannot_be_encoded_still_completes_the_run(tmp_path: Path) -> None:
    with system_on(tmp_path / "state.db") as system:
        # The step's own output is checkpointed (so encodable); the mapper's is not.
        opaque = task(lambda ctx: 1, name="one").nested(lambda c: c, lambda c, out: object())
        handle = system.run(opaque, {})
        assert type(handle.result(5)) is object
        with pytest.raises(
            PersistenceError, match=r"not recorded: .*cannot encode output: object is not"
        ):
            system.stored_result(handle.id)


def test_an_output_that_is_the_last_steps_output_is_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    big = bytes(range(256)) * 16384  # 4 MiB
    with system_on(db) as system:
        handle = system.run(task(lambda ctx: big, name="make").named("big"), {})
        assert handle.result(10) == big
    with closing(sqlite3.connect(db)) as conn:
        output, output_step = conn.execute(
            "SELECT output, output_step FROM runs WHERE run_id = ?", (handle.id,)
        ).fetchone()
    assert (output, output_step) == (None, "make")  # a reference to the step's record
    assert db.stat().st_size < 1.25 * len(big)  # once, not twice (nor as base64)
    with system_on(db) as later:
        assert later.stored_result(handle.id) == big


def test_an_output_no_step_recorded_is_stored_once_as_a_blob(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    wrapped = task(lambda ctx: [1, 2], name="pair").nested(lambda c: c, lambda c, out: (out, 3))
    with system_on(db) as system:
        handle = system.run(wrapped, {})
        assert handle.result(5) == ([1, 2], 3)
    with closing(sqlite3.connect(db)) as conn:
        output, output_step = conn.execute(
            "SELECT output, output_step FROM runs WHERE run_id = ?", (handle.id,)
        ).fetchone()
    assert isinstance(output, bytes) and output_step is None
    with system_on(db) as later:
        assert later.stored_result(handle.id) == ([1, 2], 3)


@pytest.mark.parametrize(
    ("wrap", "tamper", "reason"),
    [
        (False, "UPDATE steps SET output = x'00'", "output of step 'answer' fails its CRC-32"),
        (True, "UPDATE runs SET output = x'00'", "the run's output fails its CRC-32"),
    ],
)
def test_a_corrupt_recorded_output_is_a_clear_error(
    tmp_path: Path, wrap: bool, tamper: str, reason: str
) -> None:
    db = tmp_path / "state.db"
    answer = task(lambda ctx: 42, name="answer")
    with system_on(db) as system:
        handle = system.run(answer.nested(lambda c: c, lambda c, out: -out) if wrap else answer, {})
        handle.result(5)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(tamper)
    with system_on(db) as system, pytest.raises(PersistenceError, match=reason):
        system.stored_result(handle.id)


def test_an_unknown_run_has_no_result(tmp_path: Path) -> None:
    with (
        system_on(tmp_path / "state.db") as system,
        pytest.raises(PersistenceError, match="no-such-run"),
    ):
        system.stored_result("no-such-run")


def test_a_completed_run_cannot_be_resumed_so_its_outcome_stays(tmp_path: Path) -> None:
    wf = task(lambda ctx: 7, name="seven").named("seven")
    with system_on(tmp_path / "state.db") as system:
        handle = system.run(wf, {})
        handle.result(5)
        for force in (False, True):
            with pytest.raises(PersistenceError, match="already Completed"):
                system.resume(handle.id, wf, force=force)
        assert system.stored_result(handle.id) == 7
