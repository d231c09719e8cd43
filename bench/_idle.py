"""Idle CPU of real ``actorflow node`` processes on loopback, per member, at two sizes.

Starts N plaintext members (one seed, the rest join it), waits until the seed
lists all of them, lets the cluster settle, then reads each process's CPU time
(each thread's ``/proc/PID/task/TID/sched`` run time, or ``/proc/PID/stat``:
utime + stime in 10 ms ticks where that is missing) over a fixed window. The figure is the mean
per member in percent of one core. The failure detector's cost per member must
not grow with the cluster: the 32-member figure is compared to the 8-member one.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from runtime import ActorSystem, node_command

__all__ = ["idle_cpu_per_member"]

ROOT = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of each thread of ``pid``: ``se.sum_exec_runtime`` (ms, exact) of
    ``/proc/PID/task/*/sched``; without it, the process's utime + stime in clock ticks
    (10 ms: an idle member of a short window may read 0)."""
    threads: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            lines = (task / "sched").read_text().splitlines()
        except OSError:  # the thread ended, or no scheduler statistics here
            continue
        for line in lines:
            if line.startswith("se.sum_exec_runtime"):
                threads[task.name] = float(line.split(":")[1]) / 1000.0
    if threads:
        return threads
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return {"ticks": (int(fields[11]) + int(fields[12])) / _TICKS}  # utime, stime


def _spent(before: dict[str, float], after: dict[str, float]) -> float:
    """CPU seconds between two readings (threads started in between count from 0)."""
    return sum(seconds - before.get(thread, 0.0) for thread, seconds in after.items())


def _start(name: str, seeds: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        node_command(name, join=seeds, plaintext=True, drain_timeout=1),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def _address(process: subprocess.Popen[str], timeout: float) -> str:
    """The address in the node's ``node NAME up at ADDRESS`` line."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("node ") and " up at " in line:
            return line.rsplit(" up at ", 1)[1].strip()
        if not line and process.poll() is not None:
            break
    raise RuntimeError(f"a member did not start within {timeout}s")


def _members_seen(seed: str, expected: int, timeout: float) -> None:
    """Wait until a short-lived member joined through ``seed`` sees ``expected`` others up."""
    deadline = time.monotonic() + timeout
    with ActorSystem(
        "idle-probe", listen="tcp://127.0.0.1:0", plaintext=True, join=[seed]
    ) as probe:
        while time.monotonic() < deadline:
            up = [name for name, status in probe.members().items() if status == "up"]
            if len(up) >= expected + 1:  # the probe itself is listed too
                probe.leave(drain_timeout=1)
                return
            time.sleep(0.2)
        raise RuntimeError(f"the cluster did not reach {expected} members in {timeout}s")


def idle_cpu_per_member(members: int, window: float, settle: float = 3.0) -> float:
    """Mean CPU of one idle member over ``window`` seconds, in percent of one core."""
    processes: list[subprocess.Popen[str]] = []
    try:
        processes.append(_start("idle-0", []))
        seed = _address(processes[0], 30)
        processes += [_start(f"idle-{i}", [seed]) for i in range(1, members)]
        for process in processes[1:]:
            _address(process, 60)
        _members_seen(seed, members, 60)
        time.sleep(settle)  # joins, probes and their logging are over
        before = [_cpu_seconds(p.pid) for p in processes]
        started = time.monotonic()
        time.sleep(window)
        after = [_cpu_seconds(p.pid) for p in processes]
        elapsed = time.monotonic() - started
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("a member exited during the idle window")
        spent = sum(_spent(b, a) for b, a in zip(before, after, strict=True))
        return 100.0 * spent / elapsed / members
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        for process in processes:
            process.wait(10)


if __name__ == "__main__":
    import sys

    for size in [int(arg) for arg in sys.argv[1:]] or [8, 32]:
        print(f"{size} members: {idle_cpu_per_member(size, 20.0):.3f}% of a core per member")
