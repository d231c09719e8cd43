"""The ETL pipeline across a local cluster, with a worker killed mid-run.

A coordinator (this process) and two worker processes (``actorflow node``)
join over CURVE-encrypted ZeroMQ on loopback. The run is handed to the running
coordinator with ``actorflow submit etl --wait`` (a client with its own key,
``admin``: it is not a member). The pipeline's steps are placed round-robin on
the workers. When the second step lands on worker-1, the demo ``kill -9``s
worker-1: the failure detector declares it down, the coordinator re-places the
in-flight step on worker-2, and the run completes. The last worker is then
stopped with SIGTERM and drains, leaves and exits 0.

    python -m examples.cluster_demo [--rows N] [--initial-delay S] [--no-kill]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from examples.etl import build_pipeline, generate_dataset, retry_policy, submitted_context
from runtime import ActorSystem, CheckpointStrategy, RunHandle, SQLiteStore, node_command
from runtime import events as ev
from transport import generate_keys

WORKERS = ("worker-1", "worker-2")
ROOT = Path(__file__).resolve().parent.parent


def start_worker(name: str, seed: str, keys: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        node_command(name, join=[seed], keys=keys, apps=["examples.etl"], drain_timeout=5),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_line(process: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    """Read the worker's output until a line starts with ``prefix`` (bounded wait)."""
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line.rstrip())
            if line.startswith(prefix):
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(timeout) or not seen or not seen[-1].startswith(prefix):
        tail = "\n".join(seen[-10:])
        raise RuntimeError(f"worker did not print {prefix!r} within {timeout}s:\n{tail}")
    return seen[-1]


class ClusterProgress:
    """Prints step events with the node they ran on, and node up/down events."""

    def __init__(self, out: IO[str], victim: subprocess.Popen[str] | None) -> None:
        self.out = out
        self.started = time.monotonic()
        self.victim = victim
        self.placed_on_victim = 0

    def say(self, line: str) -> None:
        print(f"  [{time.monotonic() - self.started:6.2f}s] {line}", file=self.out, flush=True)

    def on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.Started) and event.step:
            self.say(f"{event.step:<10} started on {event.node} (attempt {event.attempt})")
            if self.victim is not None and event.node == WORKERS[0]:
                self.placed_on_victim += 1
                if self.placed_on_victim == 2:
                    self.say(
                        f"kill -9 {WORKERS[0]} (pid {self.victim.pid}) while it runs {event.step}"
                    )
                    os.kill(self.victim.pid, signal.SIGKILL)
        elif isinstance(event, ev.Completed) and event.step:
            self.say(f"{event.step:<10} completed in {event.duration:.3f}s")
        elif isinstance(event, ev.Failed) and event.step:
            self.say(f"{event.step:<10} failed: {event.error}")
        elif isinstance(event, ev.Retrying):
            self.say(
                f"{event.step:<10} retrying as attempt {event.attempt} in "
                f"{event.delay:.2f}s ({type(event.error).__name__}: {event.error})"
            )
        elif isinstance(event, ev.NodeDown):
            self.say(f"NODE {event.node} declared {event.reason or 'down'}")
        elif isinstance(event, ev.NodeUp):
            self.say(f"NODE {event.node} up")


def submit(seed: str, keys: Path, ctx: dict[str, Any], out: IO[str]) -> dict[str, Any]:
    """``actorflow submit etl --wait --json`` as the client ``admin``; its outcome."""
    command = [
        *("actorflow", "submit", "etl", "--join", seed, "--keys", str(keys), "--name", "admin"),
        *("--ctx", json.dumps(ctx), "--wait", "--json"),
    ]
    print("$ " + " ".join(command[:9]) + " --ctx '...' --wait --json", file=out, flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "runtime._cli", *command[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"actorflow submit failed ({done.returncode}): {done.stderr}")
    outcome: dict[str, Any] = json.loads(done.stdout)
    return outcome


def summary(handle: RunHandle[Any]) -> str:
    rows = [f"  {'step':<10} {'state':<10} {'attempts':>8} {'node':<10} {'duration':>9}"]
    for step in handle.steps():
        state = "Skipped" if step.skipped else str(step.state)
        duration = "-" if step.duration is None else f"{step.duration:.3f}s"
        rows.append(
            f"  {step.step:<10} {state:<10} {step.attempts:>8} {step.node:<10} {duration:>9}"
        )
    return "\n".join(rows)


def run_demo(
    workdir: Path, rows: int, *, initial_delay: float, kill: bool, out: IO[str] = sys.stdout
) -> tuple[RunHandle[int], list[int]]:
    """Run the whole demo in ``workdir``; returns the run and the workers' exit codes."""
    keys = workdir / "keys"
    for name in ("coordinator", *WORKERS, "admin"):  # admin: the key of the submitting client
        generate_keys(keys, name)
    source = workdir / "sales.csv"
    generate_dataset(source, rows)
    store = SQLiteStore(workdir / "state.db")
    workers: list[subprocess.Popen[str]] = []
    with ActorSystem(
        "coordinator",
        listen="tcp://127.0.0.1:0",
        keys=keys,
        store=store,
        checkpoint=CheckpointStrategy.AFTER_EACH_STEP,
    ) as coordinator:
        print(f"coordinator up at {coordinator.address}", file=out)
        try:
            for name in WORKERS:
                workers.append(start_worker(name, f"coordinator@{coordinator.address}", keys))
            for process in workers:
                print("  " + wait_for_line(process, "node ", timeout=30), file=out)
            deadline = time.monotonic() + 20
            while sum(s == "up" for s in coordinator.members().values()) < 3:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"workers did not join: {coordinator.members()}")
                time.sleep(0.05)  # polling a membership table, bounded by the deadline
            progress = ClusterProgress(out, workers[0] if kill else None)
            coordinator.events.subscribe(progress)
            coordinator.register_workflow(
                build_pipeline(retry_policy(initial_delay)), context=submitted_context
            )
            ctx = {"workdir": str(workdir), "source": str(source)}
            outcome = submit(f"coordinator@{coordinator.address}", keys, ctx, out)
            handle = coordinator.handle(outcome["run_id"])
            print(summary(handle), file=out)
            if outcome["state"] != "Completed":
                raise RuntimeError(f"run {handle.id} {outcome['state']}: {outcome['error']}")
            print(
                f"run {handle.id}: {outcome['state']}; loaded {outcome['output']} rows "
                "into the warehouse",
                file=out,
            )
        finally:
            for process in workers:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            codes = [process.wait(timeout=30) for process in workers]
    store.close()
    print(f"workers exited with {codes} (-9: killed by the demo; 0: drained and left)", file=out)
    return handle, codes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows to generate (100000)")
    parser.add_argument("--initial-delay", type=float, default=1.0, help="first backoff, s")
    parser.add_argument("--no-kill", action="store_true", help="do not kill a worker")
    args = parser.parse_args(argv)
    if args.rows < 0:
        parser.error(f"--rows must be >= 0, got {args.rows}")
    with tempfile.TemporaryDirectory(prefix="actorflow-cluster-") as tmp:
        try:
            run_demo(Path(tmp), args.rows, initial_delay=args.initial_delay, kill=not args.no_kill)
        except Exception as exc:  # noqa: BLE001 - the summary above says which step
            print(f"demo failed: {type(exc).__name__}: {exc}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
