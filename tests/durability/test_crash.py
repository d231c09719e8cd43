"""kill -9 of a process running a checkpointed 20-step chain, then resume in another process.

The worker (``chain_worker.py``) logs each step's side effect durably before it
prints ``STEP i``; with ``--gate`` a step then waits for a line on stdin, so the
test kills it at a known point. Whatever the point, the resumed run must end
with the right output, every step recorded completed before the kill must have
run exactly once, and only the step in flight may have run twice.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .procs import (
    CHAIN,
    CHAIN_OUTPUT,
    Worker,
    completed_steps,
    counts,
    finish_resumed_run,
    kill_at_step,
    load,
    read_log,
    summary_of,
    wait_step,
)

RUN = "run-1"


def resume_in_new_process(
    spawn: Callable[..., Worker], db: Path, log: Path, how: str, first_step: int
) -> Worker:
    """Resume RUN in a fresh process (``resume(run_id)`` or ``recover=True``); check its output."""
    resumer = spawn("resume", db, RUN, log, *(["--recover"] if how == "recover" else []))
    assert finish_resumed_run(resumer, RUN, first_step) == f"RESULT {CHAIN_OUTPUT}"
    assert resumer.exit_code() == 0
    return resumer


def assert_completed_run(db: Path, epoch: int = 2) -> None:
    checkpoint = load(db, RUN)
    assert checkpoint.state == "Completed"
    assert checkpoint.epoch == epoch
    assert [k for k, r in checkpoint.steps.items() if r.state == "Completed"] == CHAIN


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("k", "how"),
    [(0, "resume"), (3, "recover"), (7, "resume"), (12, "recover"), (19, "resume")],
)
def test_kill_9_while_step_k_runs_reruns_only_step_k(
    tmp_path: Path, spawn: Callable[..., Worker], k: int, how: str
) -> None:
    db, log = tmp_path / "state.db", tmp_path / "effects.log"
    owner = kill_at_step(spawn, db, RUN, log, k)

    # What the dead owner left: steps before k checkpointed, step k's side effect done.
    assert completed_steps(db, RUN) == CHAIN[:k]
    assert counts(read_log(log)) == dict.fromkeys(CHAIN[: k + 1], 1)
    summary = summary_of(db, RUN)
    assert summary.owner is not None
    assert f":{owner.pid}:" in summary.owner
    assert summary.lease_until is not None
    assert summary.lease_until > time.time()  # the lease is live: only the dead pid frees it

    resumer = resume_in_new_process(spawn, db, log, how, first_step=k)

    entries = read_log(log)
    expected = dict.fromkeys(CHAIN, 1)
    expected[CHAIN[k]] = 2  # the step in flight at the kill runs again
    assert counts(entries) == expected
    assert [e.step for e in entries if e.pid == owner.pid] == CHAIN[: k + 1]
    assert [e.step for e in entries if e.pid == resumer.pid] == CHAIN[k:]
    assert {e.key for e in entries if e.step == CHAIN[k]} == {f"{RUN}/{CHAIN[k]}"}
    assert_completed_run(db)


@pytest.mark.timeout(60)
def test_kill_9_inside_the_checkpoint_transaction_reruns_the_unrecorded_step(
    tmp_path: Path, spawn: Callable[..., Worker]
) -> None:
    """Killed with step_9's checkpoint written but not committed: step_9 is not recorded."""
    db, log = tmp_path / "state.db", tmp_path / "effects.log"
    owner = spawn("run", db, RUN, log, "--hold-commit", "9")
    for index in range(10):
        wait_step(owner, index)
    owner.expect("COMMIT step_9")

    # We really are inside the write transaction: the write lock is held ...
    with contextlib.closing(sqlite3.connect(db, timeout=0, isolation_level=None)) as conn:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            conn.execute("BEGIN IMMEDIATE")
        # ... and readers see the checkpoint of step_8, not step_9's uncommitted one. (A raw
        # read: opening a SQLiteStore would wait for the lock, as it checks the schema in
        # a BEGIN IMMEDIATE transaction.)
        rows = conn.execute(
            "SELECT step FROM steps WHERE run_id = ? AND state = 'Completed' ORDER BY seq",
            (RUN,),
        ).fetchall()
        assert [key for (key,) in rows] == CHAIN[:9]
    owner.kill9()

    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert completed_steps(db, RUN) == CHAIN[:9]
    resume_in_new_process(spawn, db, log, "resume", first_step=9)
    expected = dict.fromkeys(CHAIN, 1)
    expected["step_9"] = 2  # it finished, but its checkpoint never committed
    assert counts(read_log(log)) == expected
    assert_completed_run(db)


@pytest.mark.timeout(60)
def test_kill_9_right_after_the_checkpoint_commit_reruns_nothing(
    tmp_path: Path, spawn: Callable[..., Worker]
) -> None:
    """Killed after step_9's checkpoint committed, before step_10 started: nothing runs twice."""
    db, log = tmp_path / "state.db", tmp_path / "effects.log"
    owner = spawn("run", db, RUN, log, "--hold-saved", "9")
    for index in range(10):
        wait_step(owner, index)
    owner.expect("SAVED step_9")
    owner.kill9()

    assert completed_steps(db, RUN) == CHAIN[:10]
    resume_in_new_process(spawn, db, log, "recover", first_step=10)
    assert counts(read_log(log)) == dict.fromkeys(CHAIN, 1)
    assert_completed_run(db)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", range(6))
def test_kill_9_at_a_random_moment_of_a_free_running_chain(
    tmp_path: Path, spawn: Callable[..., Worker], seed: int
) -> None:
    """No gate: kill a short random delay after a random ``STEP`` line (mid-step or mid-write)."""
    rng = random.Random(seed)
    after_step, delay = rng.randrange(2, 14), rng.uniform(0, 0.004)
    db, log = tmp_path / "state.db", tmp_path / "effects.log"
    owner = spawn("run", db, RUN, log)
    wait_step(owner, 0)
    for index in range(1, after_step + 1):
        wait_step(owner, index)
    time.sleep(delay)  # not a wait for an event: it picks a random kill moment
    owner.kill9()

    checkpoint = load(db, RUN)
    if checkpoint.state == "Completed":  # the whole chain beat the kill: nothing to resume
        assert counts(read_log(log)) == dict.fromkeys(CHAIN, 1)
        return
    done = completed_steps(db, RUN)
    assert done == CHAIN[: len(done)]
    before = counts(read_log(log))
    following = CHAIN[len(done) :][:1]  # the step after the last recorded one, if any
    started = [step for step in following if step in before]
    # Recorded steps ran once; at most the next one had started (it may or may not have).
    assert before == dict.fromkeys(done + started, 1)

    resume_in_new_process(spawn, db, log, "resume", first_step=len(done))
    expected = dict.fromkeys(CHAIN, 1)
    for step in started:
        expected[step] = 2
    assert counts(read_log(log)) == expected
    assert_completed_run(db)


# Issue 9: a run resumed by `actorflow resume` took the CLI system's strategy (none), so
# steps completed after the resume were not recorded and a second crash ran them again.
@pytest.mark.timeout(60)
def test_kill_9_after_a_cli_resume_reruns_nothing_the_resume_completed(
    tmp_path: Path, spawn: Callable[..., Worker]
) -> None:
    db, log = tmp_path / "state.db", tmp_path / "effects.log"
    kill_at_step(spawn, db, RUN, log, 3)
    cli = spawn("cli-resume", db, RUN, log, "--gate")
    while cli.line() != "STEP 3":  # the CLI's own lines come first
        pass
    for index in range(4, 8):
        cli.send()  # step index-1 returns; its checkpoint is written before step index starts
        wait_step(cli, index)
    cli.kill9()
    assert completed_steps(db, RUN) == CHAIN[:7]

    resume_in_new_process(spawn, db, log, "resume", first_step=7)

    expected = dict.fromkeys(CHAIN, 1)
    expected[CHAIN[3]] = expected[CHAIN[7]] = 2  # only the steps in flight at the kills
    assert counts(read_log(log)) == expected
