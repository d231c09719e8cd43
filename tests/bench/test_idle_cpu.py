"""The idle-CPU reading of ``bench._idle``: an idle member spends a few ms a second, below
the 10 ms clock tick of ``/proc/PID/stat``, so a short smoke window read 0 for a whole
cluster now and then (a zero baseline: the row had no ratio and failed the smoke test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench._idle import _cpu_seconds, _spent

_BUSY_THEN_WAIT = """
import sys, time
print("ready", flush=True)
sys.stdin.readline()
end = time.thread_time() + 0.003
while time.thread_time() < end:
    pass
print("done", flush=True)
sys.stdin.readline()
"""


@pytest.mark.timeout(30)
def test_a_few_milliseconds_of_cpu_are_measured_not_rounded_to_a_tick() -> None:
    if not Path("/proc/self/task").is_dir():
        pytest.skip("no /proc")
    with subprocess.Popen(
        [sys.executable, "-c", _BUSY_THEN_WAIT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdin is not None and child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "ready"
            before = _cpu_seconds(child.pid)
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "done"
            spent = _spent(before, _cpu_seconds(child.pid))
        finally:
            child.kill()
    if "ticks" in before:
        pytest.skip("no per-thread scheduler statistics on this kernel")
    assert 0.003 <= spent < 0.5, spent
