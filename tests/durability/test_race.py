"""Two processes resume the same orphaned run at once: exactly one wins, the other is told.

The run's owner was kill -9'ed with ``step_5`` in flight, so its lease is still
live and only its dead pid lets anyone take the run over. Two long-lived
``race`` workers get the database path on stdin back to back, each round on a
fresh copy of the orphaned database, so both take the run over at the same time.
(Before the fix in ``ActorSystem._claim_for_resume`` both usually won: each
force-claimed after seeing the dead owner, and the first was fenced off with
StaleEpoch after both had run ``step_5``.)
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from .procs import (
    CHAIN,
    CHAIN_OUTPUT,
    Worker,
    counts,
    kill_at_step,
    load,
    read_log,
    settle,
    wait_step,
)

RUN = "run-1"
K = 5
ROUNDS = 6


def claim_outcome(worker: Worker) -> tuple[str, bool]:
    """``RESUMED ...`` or ``BUSY ...``, the first report of a race worker's round.

    Also whether ``STEP 5`` came first: the winner's resumed run may start
    before its main thread prints ``RESUMED``.
    """
    line = worker.line()
    step_first = line == f"STEP {K}"
    if step_first:
        line = worker.line()
    assert line.startswith(("RESUMED ", "BUSY ")), f"{line!r}: {worker.describe()}"
    assert not (step_first and line.startswith("BUSY ")), worker.describe()
    return line, step_first


def run_to_end(winner: Worker, step_seen: bool) -> str:
    """Release the winner's gated steps 5..19 one by one; returns its run's end line."""
    for index in range(K, 20):
        if not (index == K and step_seen):
            wait_step(winner, index)
        winner.send()
    return winner.line()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["resume", "recover"])
def test_two_processes_resuming_an_orphaned_run_at_once_have_exactly_one_winner(
    tmp_path: Path, spawn: Callable[..., Worker], how: str
) -> None:
    template_db, template_log = tmp_path / "orphan.db", tmp_path / "orphan.log"
    kill_at_step(spawn, template_db, RUN, template_log, K)
    settle(template_db)  # one self-contained file to copy

    options = ["--recover"] if how == "recover" else []
    racers = [spawn("race", template_db, RUN, template_log, "--gate", *options) for _ in range(2)]
    for racer in racers:
        racer.expect("READY")
    for round_number in range(ROUNDS):
        db, log = tmp_path / f"round{round_number}.db", tmp_path / f"round{round_number}.log"
        shutil.copyfile(template_db, db)
        shutil.copyfile(template_log, log)
        for racer in racers:
            racer.send(f"{db} {log}")
        # The winner's steps wait on its stdin, so its run is still in flight (and its
        # lease live) however late the loser tries: the loser cannot find a finished run.
        outcomes = [claim_outcome(racer) for racer in racers]
        results = [line for line, _ in outcomes]
        assert sorted(line.split()[0] for line in results) == ["BUSY", "RESUMED"], (
            f"round {round_number}: {results}"
        )
        winner, loser = racers if results[0].startswith("RESUMED") else racers[::-1]
        busy = results[racers.index(loser)]
        step_seen = outcomes[racers.index(winner)][1]
        if how == "resume":  # resume() raised RunBusy naming the run and the winner
            assert f"run {RUN} is owned by" in busy
            assert f":{winner.pid}:" in busy
        loser.expect("READY")
        assert run_to_end(winner, step_seen) == f"RESULT {CHAIN_OUTPUT}"
        winner.expect("READY")
        expected = dict.fromkeys(CHAIN, 1)
        expected[CHAIN[K]] = 2
        assert counts(read_log(log)) == expected, f"round {round_number}"
        checkpoint = load(db, RUN)
        assert (checkpoint.state, checkpoint.epoch) == ("Completed", 2)
    for racer in racers:
        racer.process.stdin.close()  # type: ignore[union-attr]
        assert racer.exit_code() == 0
