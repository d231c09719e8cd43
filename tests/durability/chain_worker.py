"""A worker process for the durability tests; talks line by line on stdin/stdout.

Run from the repository root as ``python -m tests.durability.chain_worker MODE
DB RUN_ID LOG [options]`` (so ``tests.support`` imports); the tests import
``build_chain`` from it too, so importing it has no side effects.

The workflow is ``chain20``: ``step_0.then(step_1)...then(step_19)``. Step ``i``
appends ``step_i PID ATTEMPT IDEMPOTENCY_KEY`` to the side-effect log LOG
(open, append, flush, fsync), prints ``STEP i``, and with ``--gate`` blocks
until the test writes a line on stdin; then it appends ``i`` to
``ctx["trail"]`` and returns a copy of the trail, so the run's output is
``[0, 1, ..., 19]`` only if every step saw the right context.

Modes:

``run``
    Starts a new run ``RUN_ID``; prints ``STARTED RUN_ID``.
``resume``
    ``system.resume(RUN_ID)`` (``--force``: with force=True; ``--wait-lease``:
    on RunBusy wait until the lease the store reports has run out, then retry),
    or with ``--recover`` ``ActorSystem(recover=True)``; prints ``RESUMED
    RUN_ID``, or ``BUSY message`` when the run is owned by a live process.
``race``
    Prints ``READY``; then, for each stdin line ``DB LOG``, resumes ``RUN_ID``
    in DB logging to LOG (``--recover``: recovers) and prints the outcome as ``resume`` does, then
    ``RESULT ...``/``ERROR ...``, then ``READY`` again. Used to start two
    resumes of the same run as close together as possible.
``exits``
    ``KIND`` is ``SystemExit`` or ``KeyboardInterrupt``: see ``exits_main``.
``cli-resume``
    Runs the real ``actorflow resume RUN_ID --app tests.durability.chain_worker
    --db DB`` command in this process (its ``main``), so the run is resumed by
    a system built as the CLI builds it; ``workflows()`` below is the app.

Every mode prints the run's end as ``RESULT <json>`` or ``ERROR <Type> <message>``.

Options:
``--gate``          every step (of a resumed run too) blocks until a stdin line arrives.
``--hold-commit K`` the checkpoint write after ``step_K`` prints ``COMMIT step_K``
                    and blocks inside its transaction, right before ``COMMIT``.
``--hold-saved K``  after that write committed, prints ``SAVED step_K`` and blocks.
``--lease S``       the system's lease in seconds (default 30).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykka

from runtime import (
    ActorSystem,
    CheckpointStrategy,
    PersistenceError,
    RunBusy,
    RunHandle,
    SQLiteStore,
    Workflow,
    current_step,
    parallel,
    task,
)
from runtime.events import Completed, Event
from tests.support import wait_until

CHAIN_NAME = "chain20"
CHAIN_LENGTH = 20
RESULT_TIMEOUT = 30.0


_say_lock = threading.Lock()


def say(line: str) -> None:
    """One whole line on stdout (print from two threads can interleave text and newline)."""
    with _say_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def wait_go(what: str) -> None:
    """Block until the test writes a line on stdin (EOF: the test is gone)."""
    if not sys.stdin.readline():
        raise RuntimeError(f"stdin closed while waiting to release {what}")


def append_line(log: Path, line: str) -> None:
    """Append one line durably: a killed process never leaves it half-recorded in the page cache."""
    with open(log, "a", encoding="utf-8") as out:
        out.write(line + "\n")
        out.flush()
        os.fsync(out.fileno())


def build_chain(
    log: Path,
    *,
    gate: Callable[[str], None] | None = None,
    length: int = CHAIN_LENGTH,
    name: str = CHAIN_NAME,
) -> Workflow[dict[str, Any], list[int]]:
    """``step_0.then(step_1)...`` named ``name``; see the module docstring."""

    def make_step(index: int) -> Callable[[dict[str, Any]], list[int]]:
        def step(ctx: dict[str, Any]) -> list[int]:
            info = current_step()
            append_line(log, f"{info.step} {os.getpid()} {info.attempt} {info.idempotency_key}")
            say(f"STEP {index}")
            if gate is not None:
                gate(info.step)
            ctx.setdefault("trail", []).append(index)
            return list(ctx["trail"])

        return step

    steps = [task(make_step(index), name=f"step_{index}") for index in range(length)]
    chain = steps[0]
    for step in steps[1:]:
        chain = chain.then(step)
    return chain.named(name)


class GatedStore(SQLiteStore):
    """A SQLiteStore that can pause inside, or right after, the write after step ``K``.

    The pause inside the transaction uses the connection's trace callback, which
    SQLite calls before it runs each statement: blocking on ``COMMIT`` leaves the
    step's UPDATE/INSERT executed but not committed, with the write lock held.
    """

    def __init__(
        self, path: Path, *, hold_commit: str | None = None, hold_saved: str | None = None
    ) -> None:
        super().__init__(path)
        self._hold_commit = hold_commit
        self._hold_saved = hold_saved
        self._saving: tuple[str, ...] = ()
        if hold_commit is not None:
            assert self._conn is not None
            self._conn.set_trace_callback(self._trace)

    def append(self, run_id: str, **kwargs: Any) -> None:
        steps = tuple(record.step for record in kwargs["records"])
        self._saving = steps
        try:
            super().append(run_id, **kwargs)
        finally:
            self._saving = ()
        if self._hold_saved is not None and self._hold_saved in steps:
            say(f"SAVED {self._hold_saved}")
            wait_go("the step after a save")

    def _trace(self, statement: str) -> None:
        if statement == "COMMIT" and self._hold_commit in self._saving:
            say(f"COMMIT {self._hold_commit}")
            wait_go("a COMMIT")


def report_end(wait: Callable[[], Any]) -> None:
    try:
        output = wait()
    except BaseException as exc:  # the run's error, whatever it is, is the report
        say(f"ERROR {type(exc).__name__} {exc}")
    else:
        say(f"RESULT {json.dumps(output)}")


def make_system(
    store: SQLiteStore, log: Path, lease: float, *, recover: bool = False, gate: bool = False
) -> ActorSystem:
    """The chain20 system; ``recover=True`` resumes every orphaned run while it starts."""
    return ActorSystem(
        "durability",
        store=store,
        checkpoint=CheckpointStrategy.AFTER_EACH_STEP,
        workflows=[build_chain(log, gate=wait_go if gate else None)],
        lease=lease,
        recover=recover,
    )


def run_main(args: argparse.Namespace) -> None:
    store = GatedStore(
        args.db,
        hold_commit=None if args.hold_commit is None else f"step_{args.hold_commit}",
        hold_saved=None if args.hold_saved is None else f"step_{args.hold_saved}",
    )
    chain = build_chain(args.log, gate=wait_go if args.gate else None)
    with make_system(store, args.log, args.lease) as system:
        handle = system.run(chain, {}, run_id=args.run_id)
        say(f"STARTED {handle.id}")
        report_end(lambda: handle.result(RESULT_TIMEOUT))
    store.close()


def resume_once(store: SQLiteStore, args: argparse.Namespace) -> None:
    """Resume or recover ``args.run_id``; print the claim's outcome, then the run's."""
    if args.recover:
        with make_system(store, args.log, args.lease, recover=True, gate=args.gate) as system:
            try:
                handle = system.handle(args.run_id)
            except KeyError:
                say("BUSY nothing recovered")
                return
            say(f"RESUMED {handle.id}")
            report_end(lambda: handle.result(RESULT_TIMEOUT))
        return
    with make_system(store, args.log, args.lease, gate=args.gate) as system:
        outcome: list[RunHandle[Any] | RunBusy] = []

        def claimed() -> bool:
            """Resumed, or busy and not to wait (``--wait-lease``: until the lease ran out)."""
            try:
                outcome[:] = [system.resume(args.run_id, force=args.force)]
            except RunBusy as exc:
                outcome[:] = [exc]
                return not args.wait_lease
            return True

        try:
            wait_until(claimed, RESULT_TIMEOUT, interval=0.05)
        except PersistenceError as exc:
            say(f"ERROR {type(exc).__name__} {exc}")
            return
        [claim] = outcome
        if isinstance(claim, RunBusy):
            say(f"BUSY {claim}")
            return
        say(f"RESUMED {claim.id}")
        report_end(lambda: claim.result(RESULT_TIMEOUT))


def resume_main(args: argparse.Namespace) -> None:
    with SQLiteStore(args.db) as store:
        resume_once(store, args)


def race_main(args: argparse.Namespace) -> None:
    say("READY")
    for line in sys.stdin:
        db, log = line.split()
        args.log = Path(log)
        with SQLiteStore(db) as store:
            resume_once(store, args)
        say("READY")


def exits_main(args: argparse.Namespace) -> None:
    """A step raising SystemExit/KeyboardInterrupt fails; the process and its actors go on.

    Run 1 is ``parallel(ok_branch, exit_branch)``: ``exit_branch`` raises only
    after ``ok_branch`` was recorded completed. Then a long-lived actor spawned
    before run 1 must still answer, and run 2 (a 3-step chain) must complete.
    """
    kind = args.run_id  # the KIND argument
    recorded = threading.Event()

    class Watcher:
        def on_event(self, event: Event) -> None:
            if isinstance(event, Completed) and event.step == "ok_branch":
                recorded.set()

    def ok_branch(ctx: dict[str, Any]) -> str:
        append_line(args.log, "ok_branch")
        return "ok"

    def exit_branch(ctx: dict[str, Any]) -> str:
        if not recorded.wait(RESULT_TIMEOUT):
            raise TimeoutError("ok_branch was never recorded completed")
        append_line(args.log, "exit_branch")
        if kind == "SystemExit":
            raise SystemExit(3)
        raise KeyboardInterrupt

    class Echo(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            return message

    failing = parallel(task(ok_branch), task(exit_branch)).named("exits")
    with SQLiteStore(args.db) as store, make_system(store, args.log, args.lease) as system:
        echo = system.spawn(Echo)
        first = system.run(failing, {}, run_id="exits-1", observers=[Watcher()])
        report_end(lambda: first.result(RESULT_TIMEOUT))
        say(f"ECHO {echo.ask('still here', timeout=5)}")
        second = system.run(build_chain(args.log, length=3, name="after"), {}, run_id="exits-2")
        report_end(lambda: second.result(RESULT_TIMEOUT))
    say("EXITING")


def workflows() -> list[Workflow[Any, Any]]:
    """The app ``actorflow resume --app tests.durability.chain_worker`` loads (see cli-resume)."""
    gate = wait_go if os.environ.get("CHAIN_GATE") == "1" else None
    return [build_chain(Path(os.environ["CHAIN_LOG"]), gate=gate)]


def cli_resume_main(args: argparse.Namespace) -> None:
    from runtime._cli import main as actorflow

    os.environ["CHAIN_LOG"] = str(args.log)
    os.environ["CHAIN_GATE"] = "1" if args.gate else "0"
    argv = ["resume", args.run_id, "--app", "tests.durability.chain_worker", "--db", str(args.db)]
    say(f"EXIT {actorflow(argv)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "resume", "race", "exits", "cli-resume"])
    parser.add_argument("db", type=Path)
    parser.add_argument("run_id")
    parser.add_argument("log", type=Path)
    parser.add_argument("--gate", action="store_true")
    parser.add_argument("--hold-commit", type=int)
    parser.add_argument("--hold-saved", type=int)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--recover", action="store_true")
    parser.add_argument("--wait-lease", action="store_true")
    args = parser.parse_args()
    modes: dict[str, Callable[[argparse.Namespace], None]] = {
        "run": run_main,
        "resume": resume_main,
        "race": race_main,
        "exits": exits_main,
        "cli-resume": cli_resume_main,
    }
    modes[args.mode](args)


if __name__ == "__main__":
    main()
