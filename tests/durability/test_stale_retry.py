"""An owner that stood still past its lease starts nothing when it wakes, not even a
retry that fell due meanwhile: it renews first, learns the run was taken, and stops.

The worker runs ``flaky`` (attempt 1 fails; the retry is due DELAY s later) with a
LEASE s lease, renewed every LEASE/3 s: the retry falls due before the next
renewal. The test stops the worker (SIGSTOP) as soon as the retry is scheduled,
takes the run once the lease ran out (as an adopter on another host would), and
wakes the worker: its retry timer fires first, and attempt 2 must not run. (The
worker's store takes 0.5 s per renewal, as a distant database would: without the
check, attempt 2 runs while the renewal that would stop it is on its way.)
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from runtime import RunBusy, SQLiteStore
from tests.support import LineProcess, wait_until

pytestmark = pytest.mark.timeout(90)

LEASE = 6.0  # renewed every 2 s
DELAY = 1.5  # the retry falls due before that renewal


def test_a_woken_owner_does_not_start_a_retry_that_fell_due_while_it_stood_still(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state.db"
    argv = [sys.executable, "-m", "tests.durability.retry_worker", str(db), "run-1"]
    worker = LineProcess([*argv, str(LEASE), str(DELAY)], name="retry_worker")
    try:
        assert worker.wait_line("RETRYING", 30) is not None, worker.output()
        worker.process.send_signal(signal.SIGSTOP)
        assert worker.lines.count("ATTEMPT 1") == 1 and "ATTEMPT 2" not in worker.lines

        store = SQLiteStore(db)
        epochs: list[int] = []

        def taken() -> bool:
            try:
                epochs.append(store.claim("run-1", owner="adopter:1:x", lease=60))
            except RunBusy:
                return False  # the stopped owner's lease still runs
            return True

        assert wait_until(taken, timeout=LEASE * 4, interval=0.2)
        assert epochs == [2]

        worker.process.send_signal(signal.SIGCONT)
        end = worker.wait_line("ERROR ", 30)
        assert end is not None, worker.output()
        assert end.startswith("ERROR StaleEpoch "), end
        assert "renew" in end, end
        assert "ATTEMPT 2" not in worker.lines, worker.output()
        assert store.load("run-1").epoch == 2  # the stale owner wrote nothing after
    finally:
        worker.process.send_signal(signal.SIGCONT)
        worker.stop()
