"""Memory rows: resident memory per idle actor, NodeActor vs a bare pykka actor.

Each sample runs in a fresh interpreter (``python -m bench._memory --worker
KIND N``) so earlier rows' garbage, arenas and threads do not pollute it. The
worker warms up (one actor of the kind started and stopped), reads VmRSS,
starts N idle actors, waits until their N threads exist, reads VmRSS again and
prints the delta per actor as JSON. Thread stacks are virtual memory: only the
pages a thread touched count, which is what RSS measures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykka

from actors import NodeActor, RealClock
from bench._row import Config, Family, Row, Target, interleaved

__all__ = ["FAMILY", "rss_bytes", "worker_json"]

_ROOT = Path(__file__).resolve().parents[1]
_KINDS = ("node", "pykka")


class _Idle(pykka.ThreadingActor):
    """The baseline: a pykka actor with no state of its own."""


def rss_bytes() -> int:
    """This process's resident set size now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _starter(kind: str) -> Callable[[int], pykka.ActorRef[Any]]:
    if kind == "pykka":
        return lambda index: _Idle.start()
    clock = RealClock("bench-memory-clock")

    def start_node(index: int) -> pykka.ActorRef[Any]:
        return NodeActor.start(
            f"node-{index}",
            lambda ctx: None,
            run_id="bench",
            clock=clock,
            emit=lambda event: None,
            report=lambda result: None,
        )

    return start_node


def _measure_in_this_process(kind: str, count: int) -> dict[str, Any]:
    start = _starter(kind)
    start(-1).stop()  # warm-up: imports, class setup, first thread
    gc.collect()
    threads_before = threading.active_count()
    before = rss_bytes()
    refs = [start(index) for index in range(count)]
    deadline = time.monotonic() + 120
    while threading.active_count() < threads_before + count:  # every actor thread is up
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {threading.active_count() - threads_before} threads started")
        time.sleep(0.01)
    time.sleep(0.2)  # let the last threads reach their blocking inbox.get()
    gc.collect()
    after = rss_bytes()
    for ref in refs:
        ref.stop(block=False)
    for ref in refs:
        ref.actor_stopped.wait(60)
    return {
        "kind": kind,
        "count": count,
        "rss_before": before,
        "rss_after": after,
        "kib_per_actor": (after - before) / count / 1024,
    }


def worker_json(module: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    """Run ``python -m module *args`` in a fresh interpreter; the JSON of its last stdout line.

    Raises ``subprocess.TimeoutExpired`` (the child is killed) after ``timeout``
    seconds, ``RuntimeError`` when the child fails.
    """
    completed = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"worker {module} {' '.join(args)} failed: {completed.stderr.strip()[-500:]}"
        )
    result: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    return result


def _sample(kind: str, count: int) -> float:
    """KiB per idle actor of ``kind`` with ``count`` live, measured in a fresh interpreter."""
    return float(worker_json("bench._memory", "--worker", kind, str(count))["kib_per_actor"])


def run(config: Config) -> list[Row]:
    if not Path("/proc/self/statm").exists():
        return [
            Row(
                "memory",
                "memory per idle node actor",
                "KiB/actor",
                None,
                note="needs /proc/self/statm (Linux)",
                unavailable="N/A",
            )
        ]
    rows = []
    for count in (config.size(1000, 20), config.size(5000, 50)):
        node, raw = interleaved(
            config.repeats,
            [
                ("NodeActor", lambda c=count: _sample("node", c)),
                ("raw pykka actor", lambda c=count: _sample("pykka", c)),
            ],
            warmup=False,  # every sample is a fresh process already
        )
        rows.append(
            Row(
                "memory",
                f"memory per idle node actor ({count} live)",
                "KiB/actor",
                node,
                (raw,),
                Target("ratio", "<=", 1.5),
                "RSS delta in a fresh subprocess per sample",
            )
        )
    return rows


FAMILY = Family("memory", run)


def _main() -> None:
    parser = argparse.ArgumentParser(description="memory worker (run by bench._memory)")
    parser.add_argument("--worker", choices=_KINDS, required=True)
    parser.add_argument("count", type=int)
    args = parser.parse_args()
    print(json.dumps(_measure_in_this_process(args.worker, args.count)))


if __name__ == "__main__":
    _main()
