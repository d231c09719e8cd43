"""A paused owner (SIGSTOP) loses its run to another process and is fenced off when it wakes.

Process A runs the gated chain and is stopped with ``step_K`` in flight. It is
alive, so B cannot take the run without ``force`` while A's lease is live; with
``force`` (or once A's short lease ran out) B takes it and finishes it. When A
continues, its next write is refused (StaleEpoch), its run ends failed with that
error, and it runs no step after the one it had in flight.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from .procs import (
    CHAIN,
    CHAIN_OUTPUT,
    Worker,
    counts,
    finish_resumed_run,
    load,
    read_log,
    summary_of,
    wait_step,
)

RUN = "run-1"
K = 6


def stop_at_step(spawn: Callable[..., Worker], db: Path, log: Path, lease: str) -> Worker:
    """Start A with ``lease``; release steps before K; SIGSTOP it with step_K in flight."""
    a = spawn("run", db, RUN, log, "--gate", "--lease", lease)
    for index in range(K):
        wait_step(a, index)
        a.send()
    wait_step(a, K)
    a.signal(signal.SIGSTOP)
    return a


def wake_and_check_fenced(a: Worker, b: Worker, db: Path, log: Path, refused: str) -> None:
    """SIGCONT A, let its step finish: A must fail with StaleEpoch having run no more steps.

    ``refused`` is a regex of the refused action in A's error: ``append`` or ``renew``.
    """
    a.signal(signal.SIGCONT)
    a.send()  # step_K returns; its checkpoint write must be refused
    end = a.line()
    assert end.startswith("ERROR StaleEpoch "), a.describe()
    assert re.search(rf"run {RUN}: cannot ({refused}) with epoch 1: the run is at epoch 2", end)
    assert a.exit_code() == 0

    entries = read_log(log)
    assert [e.step for e in entries if e.pid == a.pid] == CHAIN[: K + 1]
    assert [e.step for e in entries if e.pid == b.pid] == CHAIN[K:]
    expected = dict.fromkeys(CHAIN, 1)
    expected[CHAIN[K]] = 2
    assert counts(entries) == expected
    # The zombie overwrote nothing: B's completed checkpoint stands.
    checkpoint = load(db, RUN)
    assert (checkpoint.state, checkpoint.epoch) == ("Completed", 2)
    assert [k for k, r in checkpoint.steps.items() if r.state == "Completed"] == CHAIN
    assert summary_of(db, RUN).owner is None


@pytest.mark.timeout(60)
def test_a_stopped_owner_blocks_resume_until_forced_and_is_then_fenced_off(
    tmp_path: Path, spawn: Callable[..., Worker]
) -> None:
    db, log = tmp_path / "state.db", tmp_path / "effects.log"
    a = stop_at_step(spawn, db, log, lease="30")

    busy = spawn("resume", db, RUN, log)
    line = busy.expect("BUSY ")
    assert f"run {RUN} is owned by" in line
    assert f":{a.pid}:" in line  # alive (only stopped), its lease live: no takeover
    assert busy.exit_code() == 0
    assert load(db, RUN).epoch == 1  # the refused resume did not bump the epoch

    b = spawn("resume", db, RUN, log, "--force")
    assert finish_resumed_run(b, RUN, K) == f"RESULT {CHAIN_OUTPUT}"
    assert b.exit_code() == 0

    # A's lease (30 s) is renewed every 10 s: its first write after SIGCONT is the checkpoint.
    wake_and_check_fenced(a, b, db, log, refused="append")


@pytest.mark.timeout(60)
def test_a_stopped_owner_whose_lease_ran_out_loses_the_run_without_force(
    tmp_path: Path, spawn: Callable[..., Worker]
) -> None:
    db, log = tmp_path / "state.db", tmp_path / "effects.log"
    a = stop_at_step(spawn, db, log, lease="1.0")

    b = spawn("resume", db, RUN, log, "--wait-lease")  # retries RunBusy until the lease ends
    assert finish_resumed_run(b, RUN, K) == f"RESULT {CHAIN_OUTPUT}"
    assert b.exit_code() == 0

    # A renews its 1 s lease every 0.33 s: on waking, its renewal or its checkpoint write
    # (whichever comes first) is refused.
    wake_and_check_fenced(a, b, db, log, refused="append|renew")
