"""``ProgressObserver``: one line per run saying how far it got, from its events alone.

It needs no access to the run: the total comes from ``Planned`` events (the
static plan, grown as map and dynamic parts start, shrunk as parts are
skipped), the rest from step events. So it works the same for a local run,
a cluster run (step events of remote nodes are forwarded) and any number of
runs at once. It runs on the event bus thread, like every observer.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from actors import events as ev

__all__ = ["ProgressObserver", "RunProgress"]

_CLEAR = "\x1b[K"  # erase to the end of the line: a shorter line leaves no tail behind


@dataclass
class RunProgress:
    """What one run did so far, as counted from its events."""

    run_id: str
    planned: bool = False  # a Planned event arrived: until then there is no total to show
    total: int = 0  # steps planned at most, so far (see ``Planned``)
    open: int = 0  # map and dynamic parts not started yet: the total may still grow
    resumed: int = 0  # steps taken from a checkpoint on a resume
    completed: set[str] = field(default_factory=set)  # a step re-run by a retry counts once
    running: set[str] = field(default_factory=set)
    retries: int = 0
    failures: int = 0  # steps failed for good (a failure a retry follows is a retry)
    step_time: float = 0.0  # total duration of the completed steps
    state: str = "running"  # then "done", "failed" or "canceled"
    duration: float | None = None  # of the whole run, once it completed

    @property
    def done(self) -> int:
        return len(self.completed) + self.resumed

    def mean_step(self) -> float | None:
        """Mean duration of the steps completed in this run; None before the first."""
        return self.step_time / len(self.completed) if self.completed else None

    def eta(self) -> float | None:
        """Seconds left: mean step duration x steps left / steps running at once.

        Dividing by the steps running now credits parallel runs for their
        width; None until a step completed, and while nothing is left.
        """
        mean, left = self.mean_step(), self.total - self.done
        if mean is None or left <= 0:
            return None
        return mean * left / max(1, len(self.running))

    def line(self) -> str:
        """``[12/40] 2 running, 1 retry, ETA 3.2s`` (``40+``: the total may still grow)."""
        head = f"[{self.done}/{self.total}{'+' if self.open else ''}]"
        if self.state == "done":
            took = "" if self.duration is None else f" in {self.duration:.1f}s"
            parts = [f"done{took}"]
        elif self.state != "running":
            parts = [self.state]
        else:
            parts = [f"{len(self.running)} running"]
        if self.retries:
            parts.append(f"{self.retries} {'retry' if self.retries == 1 else 'retries'}")
        if self.failures:
            parts.append(f"{self.failures} failed")
        eta = self.eta() if self.state == "running" else None
        if eta is not None:
            parts.append(f"ETA {eta:.1f}s")
        return f"{head} {', '.join(parts)}"


class ProgressObserver:
    """Renders each run's progress line to ``stream`` as its events arrive.

    On a terminal the line is rewritten in place (at most every ``interval``
    seconds, 0.1 by default, and always at the run's end, which ends the
    line); on anything else (a file, a pipe, ``StringIO``) each new line is
    printed whole, every time it changes (``interval`` 0 by default), so logs
    keep the history. With more than one run seen, lines start with the run id.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        terminal: bool | None = None,
        interval: float | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if terminal is None:
            isatty = getattr(self.stream, "isatty", None)
            terminal = bool(isatty()) if callable(isatty) else False
        self.terminal = terminal
        self.interval = (0.1 if terminal else 0.0) if interval is None else interval
        self._runs: dict[str, RunProgress] = {}
        self._shown: dict[str, tuple[str, float]] = {}  # run -> (line, when) last written
        self._lock = threading.Lock()  # progress() may be read from any thread

    def progress(self, run_id: str) -> RunProgress | None:
        """A copy of the counts of ``run_id`` (None if no event of it arrived)."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return None
            return RunProgress(
                **{**run.__dict__, "completed": set(run.completed), "running": set(run.running)}
            )

    def on_event(self, event: ev.Event) -> None:
        run_id = getattr(event, "run_id", None)
        if run_id is None:  # a node event: not about a run
            return
        with self._lock:
            run = self._runs.setdefault(run_id, RunProgress(run_id))
            self._count(run, event)
            line = run.line()
        self._render(run, line)

    @staticmethod
    def _count(run: RunProgress, event: ev.Event) -> None:
        step = getattr(event, "step", None)
        if isinstance(event, ev.Planned):
            run.total, run.open, run.resumed = event.total, event.open, event.resumed
            run.planned = True
        elif step is None:
            if isinstance(event, ev.Completed):
                run.state, run.duration = "done", event.duration
            elif isinstance(event, ev.Failed):
                run.state = "failed"
            elif isinstance(event, ev.Canceled):
                run.state = "canceled"
            if run.state != "running":
                run.running.clear()
        elif isinstance(event, ev.Started):
            run.running.add(step)
        elif isinstance(event, ev.Completed):
            run.running.discard(step)
            if step not in run.completed:
                run.completed.add(step)
                run.step_time += event.duration
        elif isinstance(event, ev.Failed):
            run.running.discard(step)
            run.failures += event.final
        elif isinstance(event, ev.Retrying):
            run.retries += 1
        elif isinstance(event, ev.Canceled):
            run.running.discard(step)

    def _render(self, run: RunProgress, line: str) -> None:
        if len(self._runs) > 1:
            line = f"{run.run_id} {line}"
        last, when = self._shown.get(run.run_id, ("", float("-inf")))
        if line == last:
            return
        final = run.state != "running"
        if not (run.planned or final):
            return
        now = time.monotonic()  # throttling is about what a reader sees: real time
        if not final and now - when < self.interval:
            return
        self._shown[run.run_id] = (line, now)
        if self.terminal:
            self.stream.write(f"\r{line}{_CLEAR}" + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
