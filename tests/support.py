"""Helpers shared by the whole test suite: one bounded wait, one event recorder.

Imports only the standard library, so subprocess scripts (cluster workers,
durability workers) import it too, as ``tests.support``, when the repository
root is on ``sys.path`` (``python -m ...`` from the root, or ``PYTHONPATH``).

Every wait here has a deadline: nothing sleeps to wait for something to
happen, and no poll sleeps past its deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from runtime.events import Event

ROOT = Path(__file__).resolve().parent.parent

_T = TypeVar("_T")


def wait_until(
    predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.01
) -> bool:
    """Poll ``predicate()`` until it is true (True) or ``timeout`` seconds passed (False).

    For state nobody signals (a file, a member table, a counter of another
    thread); when there is a Condition or an Event to wait on, wait on that.
    The predicate is checked once more at the deadline; no sleep goes past it.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval, remaining))


class EventRecorder:
    """A WorkflowObserver keeping every event, in order, with the time it arrived.

    Events are recorded under a lock; ``wait_for`` waits on a Condition with a
    deadline and fails the test, naming what it saw, if no event matches.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._stamped: list[tuple[float, Event]] = []

    def on_event(self, event: Event) -> None:
        stamp = time.monotonic()
        with self._cond:
            self._stamped.append((stamp, event))
            self._cond.notify_all()

    @property
    def events(self) -> list[Event]:
        """Every event so far, in arrival order (a copy)."""
        with self._cond:
            return [event for _, event in self._stamped]

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 5.0) -> Event:
        """The first event matching ``predicate``, once there is one; AssertionError after
        ``timeout`` seconds without one."""

        def match() -> Event | None:
            return next((event for _, event in self._stamped if predicate(event)), None)

        with self._cond:
            if not self._cond.wait_for(lambda: match() is not None, timeout):
                seen = [event for _, event in self._stamped]
                raise AssertionError(f"no matching event within {timeout}s; saw {seen!r}")
            found = match()
            assert found is not None
            return found

    def arrival(self, event: Event) -> float:
        """When ``event`` (this very object) arrived, on the ``time.monotonic`` clock."""
        with self._cond:
            for stamp, seen in self._stamped:
                if seen is event:
                    return stamp
        raise KeyError(f"{event!r} was not recorded")

    def names(self, *, run_level: bool = True) -> list[str]:
        """Compact ``Kind:step[:old>new]`` strings, for exact sequence assertions."""
        out = []
        for event in self.events:
            step = getattr(event, "step", None)
            if step is None and not run_level:
                continue
            label = f"{type(event).__name__}:{step or '-'}"
            if hasattr(event, "old"):
                label += f":{event.old}>{event.new}"
            out.append(label)
        return out


def gate() -> tuple[threading.Event, Callable[[Any], Any]]:
    """A task that blocks until the returned event is set (bounded by 10 s)."""
    release = threading.Event()

    def blocked(ctx: Any) -> str:
        if not release.wait(10):
            raise TimeoutError("gate never opened")
        return "released"

    return release, blocked


def actorflow(
    *args: str, timeout: float = 50, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``actorflow`` CLI in a fresh interpreter, as a user would (bounded).

    ``env``: variables set for it on top of this process's environment.
    """
    return subprocess.run(
        [sys.executable, "-m", "runtime._cli", *args],
        cwd=ROOT,
        env={**os.environ, **env} if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment with the repository root first on ``PYTHONPATH``
    (a child importing ``tests.…`` finds it whatever the cwd), plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


class LineProcess:
    """A child process whose stdout+stderr lines a thread collects, for waits with deadlines.

    Run from the repository root with ``child_env()`` unless ``env`` is given;
    ``stop`` always reaps it and closes its pipe.
    """

    def __init__(self, argv: list[str], *, name: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env if env is not None else child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, name=f"reader-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_lines(self, check: Callable[[list[str]], _T | None], timeout: float) -> _T | None:
        """``check(lines)`` once it is not None; None if it still is at end of output or
        after ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: check(self.lines) is not None or self._eof, timeout)
            return check(self.lines)

    def wait_line(self, prefix: str, timeout: float) -> str | None:
        """The first line starting with ``prefix``; None if none came within ``timeout``/EOF."""
        return self.wait_lines(
            lambda lines: next((line for line in lines if line.startswith(prefix)), None), timeout
        )

    def lingering(self) -> None:
        """Called by ``stop`` when the process outlives SIGTERM, before it is killed."""

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM, SIGKILL if it lingers past ``timeout``; always reaped. True: it lingered."""
        lingered = False
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                lingered = True
                self.lingering()
                self.process.kill()
                self.process.wait(5)
        self._reader.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return lingered


def kill9_and_reap(process: subprocess.Popen[str], timeout: float) -> None:
    """SIGKILL and reap (a dead-but-unreaped child still 'exists' for kill(pid, 0));
    fails if it died of something else."""
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout) == -signal.SIGKILL


def kill_and_reap(process: subprocess.Popen[str], timeout: float) -> int:
    """Kill ``process`` if it still runs (waking it first: it may be stopped), and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.kill()
    return process.wait(timeout)
