"""A run that survives ``kill -9`` of the member coordinating it (PostgreSQL store).

    make demo-ha                 (python -m examples.ha_demo [--steps N] [--kill-after K])

Starts an embedded PostgreSQL server, two workers (``actorflow node``), and
two coordinator-capable members that adopt orphaned runs (member A:
``python -m examples.ha_demo member``, member B: ``actorflow node --adopt``).
Member A starts a run of ``ha_chain`` (``step_0.then(step_1)...``, checkpoint
after each step); once ``step_K`` has started, the demo ``kill -9``s A. A's
lease runs out on the database's clock, B claims the run (a new epoch), and
continues it from its last checkpoint on the live members. The demo prints
every execution of every step (from a side log each step appends to) and
checks that no step completed before the kill ran again.

The module is also the ``--app`` of those processes (``workflows()``), and its
``member`` command is the "host" the failure tests start and kill.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from runtime import (
    ActorSystem,
    CheckpointStrategy,
    PostgresStore,
    RunHandle,
    Workflow,
    current_step,
    node_command,
    task,
)

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = "ha_chain"
APP = "examples.ha_demo"  # the --app of every process (not __name__: __main__ when run)
LEASE = 2.0  # seconds: short, so the demo adopts quickly
ADOPT_INTERVAL = 0.25


def append_line(path: str, line: str) -> None:
    """Append one line durably (a killed process never leaves it half-written)."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


def ha_step(ctx: dict[str, Any]) -> list[int]:
    """One step of the chain: log this execution, work a little, extend the trail."""
    info = current_step()
    index = int(info.step.rpartition("_")[2])
    log = os.environ.get("HA_LOG")
    if log:
        host = os.environ.get("ACTORFLOW_HOST_ID") or socket.gethostname()
        append_line(log, f"{info.run_id} {info.step} {host} {os.getpid()} {info.attempt}")
    time.sleep(float(os.environ.get("HA_STEP_SECONDS", "0.3")))  # the step's work
    trail = [*ctx.get("trail", []), index]
    ctx["trail"] = trail
    return trail


def build_chain(length: int | None = None) -> Workflow[dict[str, Any], list[int]]:
    """``step_0.then(step_1)...`` of ``length`` steps (``$HA_STEPS``, default 12)."""
    count = length if length is not None else int(os.environ.get("HA_STEPS", "12"))
    chain = task(ha_step, name="step_0")
    for index in range(1, count):
        chain = chain.then(task(ha_step, name=f"step_{index}"))
    return chain.named(WORKFLOW)


def workflows() -> list[Workflow[Any, Any]]:
    """The app of ``actorflow node --app examples.ha_demo``."""
    return [build_chain()]


# -- a member process (the demo's member A; the tests' hosts) ------------------------------


def report_end(handle: RunHandle[Any]) -> None:
    """Print ``DONE RUN_ID Completed`` or ``DONE RUN_ID <error type> <message>``."""
    try:
        handle.result()
    except Exception as exc:  # noqa: BLE001 - the run's error, whatever it is, is the report
        print(f"DONE {handle.id} {type(exc).__name__} {exc}", flush=True)
    else:
        print(f"DONE {handle.id} Completed", flush=True)


def member_main(args: argparse.Namespace) -> int:
    """Join, adopt orphaned runs (``--adopt``), start runs (``--start``), serve until killed."""
    system = ActorSystem(
        args.name,
        listen="tcp://127.0.0.1:0",
        join=args.join,
        plaintext=True,
        store=args.db,
        checkpoint=CheckpointStrategy.AFTER_EACH_STEP,
        workflows=workflows(),
        recover=args.adopt,
        lease=args.lease,
        adopt_interval=args.adopt_interval,
    )
    print(f"node {system.name} up at {system.address}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    for run_id in args.start:
        handle = system.run(build_chain(), {}, run_id=run_id)
        print(f"STARTED {handle.id}", flush=True)
        threading.Thread(target=report_end, args=(handle,), daemon=True).start()
    stopped.wait()
    system.shutdown()
    return 0


# -- the demo ------------------------------------------------------------------------------


class Processes:
    """The demo's processes by name; every one is ended on ``close``."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env = env
        self.folder = folder  # each process's stderr goes to NAME.err here
        self.running: dict[str, subprocess.Popen[str]] = {}

    def start(self, name: str, argv: list[str]) -> str:
        """Start ``argv`` as ``name``; return its address once it prints ``node ... up at``."""
        env = {**self.env, "ACTORFLOW_HOST_ID": f"host-{name}"}
        with open(self.folder / f"{name}.err", "w") as err:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True
            )
        self.running[name] = process
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("node "):
                threading.Thread(target=process.stdout.read, daemon=True).start()  # drain
                return line.split(" up at ")[-1].strip()
        stderr = (self.folder / f"{name}.err").read_text()
        raise RuntimeError(f"{name} exited with {process.wait()} before it was up:\n{stderr}")

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def close(self) -> None:
        for process in self.running.values():
            process.terminate()
        for process in self.running.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.running.clear()


def executions(log: Path) -> list[tuple[str, str, str]]:
    """``(run, step, host)`` of every step execution the side log recorded, in order."""
    if not log.exists():
        return []
    return [tuple(line.split()[:3]) for line in log.read_text().splitlines()]  # type: ignore[misc]


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def demo(steps: int, kill_after: int) -> int:
    from examples.embedded_postgres import EmbeddedPostgres  # noqa: PLC0415 - dev extra

    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:6.2f}s] {text}", flush=True)

    with EmbeddedPostgres() as pg:
        say(f"PostgreSQL up at {pg.url}")
        log = Path(pg.url.rpartition("host=")[2]).parent / "executions.log"
        env = {**os.environ, "HA_LOG": str(log), "HA_STEPS": str(steps), "HA_STEP_SECONDS": "0.3"}
        procs = Processes(env, log.parent)
        try:
            seed = procs.start("worker-1", node_command("worker-1", apps=[APP], plaintext=True))
            procs.start(
                "worker-2", node_command("worker-2", join=[seed], apps=[APP], plaintext=True)
            )
            say("workers worker-1 and worker-2 up")
            adopt = ["--lease", str(LEASE), "--adopt-interval", str(ADOPT_INTERVAL)]
            member_b = node_command("member-b", join=[seed], apps=[APP], plaintext=True)
            procs.start("member-b", [*member_b, "--db", pg.url, "--adopt", *adopt])
            say(f"member B up (actorflow node --adopt, lease {LEASE} s)")
            member_a = [sys.executable, "-m", APP, "member", "--name", "member-a"]
            member_a += ["--join", seed, "--db", pg.url, "--adopt", *adopt, "--start", "demo-run"]
            procs.start("member-a", member_a)
            say("member A up; it starts run demo-run")
            wait_for(
                lambda: any(s == f"step_{kill_after}" for _, s, _ in executions(log)),
                60,
                f"step_{kill_after} to start",
            )
            with PostgresStore(pg.url) as store:
                before = store.load("demo-run")
                done_before = sorted(before.steps, key=lambda s: int(s.partition("_")[2]))
                procs.kill("member-a")
                killed = time.monotonic()
                say(f"kill -9 member A (epoch {before.epoch}); steps checkpointed: {done_before}")
                wait_for(lambda: store.load("demo-run").epoch > before.epoch, 60, "adoption")
                say(
                    f"member B adopted the run after {time.monotonic() - killed:.2f} s "
                    f"(epoch {store.load('demo-run').epoch}; lease {LEASE} s)"
                )
                wait_for(lambda: store.load("demo-run").state == "Completed", 120, "the run")
                final = store.load("demo-run")
            say(f"run demo-run {final.state}")
        except BaseException:
            procs.close()
            for err in sorted(log.parent.glob("*.err")):
                print(
                    f"--- {err.name} (last lines)\n" + "\n".join(err.read_text().splitlines()[-15:])
                )
            raise
        finally:
            procs.close()
        ran = Counter(step for _, step, _ in executions(log))
        for step in sorted(ran, key=lambda s: int(s.partition("_")[2])):
            hosts = [host for _, s, host in executions(log) if s == step]
            note = "checkpointed before the kill" if step in done_before else ""
            if ran[step] > 1 and step not in done_before:
                note = "in flight at the kill: ran again (at-least-once)"
            print(f"  {step:<8} ran {ran[step]}x on {', '.join(hosts):<40} {note}")
        twice = [step for step in done_before if ran[step] != 1]
        missing = [f"step_{i}" for i in range(steps) if f"step_{i}" not in final.steps]
        if twice or missing:
            say(f"FAILED: ran again {twice}, not recorded {missing}")
            return 1
        say("no step completed before the kill ran twice; every step is recorded")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.ha_demo")
    commands = parser.add_subparsers(dest="command")
    member = commands.add_parser("member", help="a member process (used by the demo and tests)")
    member.add_argument("--name", required=True)
    member.add_argument("--join", action="append", default=[])
    member.add_argument("--db", required=True)
    member.add_argument("--adopt", action="store_true")
    member.add_argument("--lease", type=float, default=LEASE)
    member.add_argument("--adopt-interval", type=float, default=ADOPT_INTERVAL)
    member.add_argument("--start", action="append", default=[], metavar="RUN_ID")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--kill-after", type=int, default=4, help="kill A once step_K started")
    args = parser.parse_args(argv)
    if args.command == "member":
        return member_main(args)
    return demo(args.steps, args.kill_after)


if __name__ == "__main__":
    # Run the importable module's main, not this __main__ copy: the tasks peers run
    # must be named examples.ha_demo:ha_step, which workers can import.
    from examples.ha_demo import main as module_main

    sys.exit(module_main())
