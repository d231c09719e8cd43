"""Remote step rows: a coordinator (this process) placing steps on two worker processes.

- fan-out: ``parallel`` over N no-op steps spread over two ``actorflow node``
  workers, steps per second, beside the same fan-out on one local system;
- chain: microseconds per step of a chain of no-op steps pinned to one worker
  (each step is a ``run_step`` tell out and a result tell back), beside one
  remote ask round trip to an actor on that worker, measured in the same run.

Workers load ``bench._cluster_app`` (the no-op task, an echo actor); the
coordinator registers nothing, so placement by capability sends every step to
them.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from typing import Any

from bench._row import Config, Family, Row, Target, interleaved
from bench._steps import noop
from runtime import ActorSystem, Workflow, node_command, parallel, task

__all__ = ["FAMILY"]

_WORKERS = ("worker-1", "worker-2")
_TIMEOUT = 600.0  # generous: a slow machine must finish, not fail the row


def _fan_out(steps: int) -> Workflow[Any, Any]:
    return parallel(*[task(noop, name=f"f{i}") for i in range(steps)])


def _chain(steps: int, node: str) -> Workflow[Any, Any]:
    workflow: Workflow[Any, Any] = task(noop, name="c0", on=node)
    for index in range(1, steps):
        workflow = workflow.then(task(noop, name=f"c{index}", on=node))
    return workflow


def _steps_per_second(system: ActorSystem, workflow: Workflow[Any, Any], steps: int) -> float:
    started = time.perf_counter()
    system.run(workflow, {}).result(timeout=_TIMEOUT)
    return steps / (time.perf_counter() - started)


def _us_per_step(system: ActorSystem, workflow: Workflow[Any, Any], steps: int) -> float:
    return 1e6 / _steps_per_second(system, workflow, steps)


def _ask_us(system: ActorSystem, asks: int) -> float:
    """Median microseconds of one remote ask round trip to ``worker-1/echo``."""
    echo = system.ref(f"{_WORKERS[0]}/echo")
    latencies = []
    for index in range(asks):
        started = time.perf_counter()
        echo.ask(index, timeout=30)
        latencies.append((time.perf_counter() - started) * 1e6)
    return statistics.median(latencies)


def _start(seed: str) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            node_command(name, join=[seed], plaintext=True, apps=["bench._cluster_app"]),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for name in _WORKERS
    ]


def _wait_up(system: ActorSystem, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(system.members().get(name) == "up" for name in _WORKERS):
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers did not join within {timeout}s: {system.members()}")
        time.sleep(0.02)  # polling a member table, bounded by the deadline


def run(config: Config) -> list[Row]:
    fan = config.size(1000, 40)
    chain = config.size(500, 40)
    asks = config.size(2000, 100)
    fan_out, chained = _fan_out(fan), _chain(chain, _WORKERS[0])
    with (
        ActorSystem("coordinator", listen="tcp://127.0.0.1:0", plaintext=True) as coordinator,
        ActorSystem("bench-local") as local,
    ):
        workers = _start(str(coordinator.address))
        try:
            _wait_up(coordinator)
            coordinator.spawn_on(_WORKERS[0], "bench._cluster_app:Echo", name="echo")
            remote, one_system = interleaved(
                config.repeats,
                [
                    ("two workers", lambda: _steps_per_second(coordinator, fan_out, fan)),
                    ("one local system", lambda: _steps_per_second(local, fan_out, fan)),
                ],
            )
            per_step, round_trip = interleaved(
                config.repeats,
                [
                    (f"chain on {_WORKERS[0]}", lambda: _us_per_step(coordinator, chained, chain)),
                    ("one remote ask round trip", lambda: _ask_us(coordinator, asks)),
                ],
            )
        finally:
            for process in workers:
                process.terminate()  # SIGTERM: drain, leave, exit
            for process in workers:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
    return [
        Row(
            "cluster",
            f"remote fan-out, parallel({fan} no-op steps) on two workers",
            "steps/s",
            remote,
            (one_system,),
            note="coordinator + 2 worker processes over tcp loopback; baseline: same "
            "workflow on one local ActorSystem",
        ),
        Row(
            "cluster",
            f"remote chain, {chain} no-op steps pinned to one worker: time per step",
            "us",
            per_step,
            (round_trip,),
            Target("ratio", "<=", 2.5),
            f"baseline: median of {asks} ref.ask round trips to an actor on that worker",
        ),
    ]


FAMILY = Family("cluster", run)
