"""A task raising SystemExit or KeyboardInterrupt in a real worker process.

The step fails with a ``PermanentError`` (the task's exception is its cause)
and its run ends Failed in the checkpoint store, while the rest
of the process goes on: the parallel branch recorded before it stays completed,
a long-lived actor still answers, a second run completes, and the process
exits on its own with status 0 (pykka's ``stop_all`` on BaseException would
have stopped every actor).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .procs import Worker, load


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("kind", "reported"),
    [
        ("SystemExit", "ERROR PermanentError step 'exit_branch' raised SystemExit: 3"),
        ("KeyboardInterrupt", "ERROR PermanentError step 'exit_branch' raised KeyboardInterrupt: "),
    ],
)
def test_a_task_raising_a_base_exception_fails_its_step_and_the_process_goes_on(
    tmp_path: Path, spawn: Callable[..., Worker], kind: str, reported: str
) -> None:
    db, log = tmp_path / "state.db", tmp_path / "effects.log"
    worker = spawn("exits", db, kind, log)
    # run 1's result() raised a PermanentError, never the task's own exception (issue 9)
    assert worker.line() == reported
    assert worker.line() == "ECHO still here"
    for index in range(3):
        assert worker.line() == f"STEP {index}"
    assert worker.line() == "RESULT [0, 1, 2]"
    assert worker.line() == "EXITING"
    assert worker.exit_code() == 0, worker.stderr

    failed = load(db, "exits-1")
    assert failed.state == "Failed"
    assert failed.steps["ok_branch"].state == "Completed"
    exit_step = failed.steps["exit_branch"]
    assert exit_step.state == "Failed"
    assert exit_step.error is not None
    assert exit_step.error.startswith(f"runtime.PermanentError: step 'exit_branch' raised {kind}")
    assert load(db, "exits-2").state == "Completed"
    assert log.read_text(encoding="utf-8").splitlines()[:2] == ["ok_branch", "exit_branch"]
