"""Hosts for the adoption tests: each one a real process with a host id of its own.

A member is ``python -m examples.ha_demo member`` (prints ``node NAME up at
ADDR``, ``STARTED RUN``, ``DONE RUN Completed`` or ``DONE RUN <Error> <msg>``);
a worker is ``actorflow node --app examples.ha_demo``. Every step of the
``ha_chain`` workflow appends ``RUN STEP HOST PID ATTEMPT`` to the side log
``$HA_LOG``: the record of what really ran, against which the store's
checkpoints are compared.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest

from runtime import Checkpoint, PostgresStore, node_command
from tests.support import ROOT, kill9_and_reap, kill_and_reap, wait_until

STEPS = 12
STEP_SECONDS = 0.1
LEASE = 2.0
ADOPT_INTERVAL = 0.25
LINE_TIMEOUT = 30.0
RUN_TIMEOUT = 60.0


def schema_url(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` (created, with the tables, by ``PostgresStore``)."""
    with PostgresStore(url, schema=schema):
        pass
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-c search_path={schema}')}"


class Host:
    """One process; its stdout lines read with a deadline, its stderr kept in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.err_path = folder / f"{name}.err"
        with open(self.err_path, "w") as err:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**env, "ACTORFLOW_HOST_ID": f"host-{name}"},
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                bufsize=1,
            )
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name=f"reader-{name}", daemon=True).start()
        self.address = self.expect("node ").split(" up at ")[-1]

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def stderr(self) -> str:
        return self.err_path.read_text()

    def expect(self, prefix: str, timeout: float = LINE_TIMEOUT) -> str:
        """The next stdout line starting with ``prefix`` (others are kept in ``seen``)."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"{self.name} printed no {prefix!r} line in {timeout} s: {self.seen}")
            if line is None:
                self._lines.put(None)
                pytest.fail(
                    f"{self.name} exited ({self.process.poll()}) before {prefix!r}: "
                    f"{self.seen}\n{self.stderr()[-3000:]}"
                )
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def kill9(self) -> None:
        kill9_and_reap(self.process, LINE_TIMEOUT)

    def finish(self) -> None:
        """Kill (waking a stopped one first) and reap."""
        kill_and_reap(self.process, LINE_TIMEOUT)
        if self.process.stdout is not None:
            with contextlib.suppress(OSError):
                self.process.stdout.close()


class Hosts:
    """Starts members and workers against one database URL; every one is ended at ``close``."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url = url
        self.folder = folder
        self.log = folder / "executions.log"
        self.env = {
            **os.environ,
            "HA_LOG": str(self.log),
            "HA_STEPS": str(STEPS),
            "HA_STEP_SECONDS": str(STEP_SECONDS),
        }
        self.started: list[Host] = []
        self.seed: str | None = None

    def _start(self, name: str, argv: list[str]) -> Host:
        host = Host(name, argv, self.env, self.folder)
        self.started.append(host)
        if self.seed is None:
            self.seed = host.address
        return host

    def worker(self, name: str) -> Host:
        join = [self.seed] if self.seed else []
        argv = node_command(name, join=join, apps=["examples.ha_demo"], plaintext=True)
        return self._start(name, argv)

    def member(self, name: str, *, adopt: bool = False, start: tuple[str, ...] = ()) -> Host:
        argv = [sys.executable, "-m", "examples.ha_demo", "member", "--name", name]
        argv += ["--db", self.url, "--lease", str(LEASE), "--adopt-interval", str(ADOPT_INTERVAL)]
        argv += ["--join", self.seed] if self.seed else []
        argv += ["--adopt"] if adopt else []
        for run_id in start:
            argv += ["--start", run_id]
        return self._start(name, argv)

    def executions(self, run_id: str) -> list[tuple[str, str]]:
        """``(step, host)`` of each execution of ``run_id``'s steps, in order."""
        if not self.log.exists():
            return []
        rows = [line.split() for line in self.log.read_text().splitlines()]
        return [(row[1], row[2]) for row in rows if row[0] == run_id]

    def ran(self, run_id: str) -> Counter[str]:
        return Counter(step for step, _ in self.executions(run_id))

    def wait_started(self, run_id: str, step: str) -> None:
        assert wait_until(lambda: step in self.ran(run_id), RUN_TIMEOUT), (
            f"{step} of {run_id} never started: {self.executions(run_id)}"
        )

    def close(self) -> None:
        for host in self.started:
            host.finish()
        self.started.clear()


def load(url: str, run_id: str) -> Checkpoint:
    with PostgresStore(url) as store:
        return store.load(run_id)


def wait_completed(url: str, run_id: str, timeout: float = RUN_TIMEOUT) -> Checkpoint:
    """The run's checkpoint once it is Completed (fails the test at the deadline)."""
    with PostgresStore(url) as store:
        assert wait_until(lambda: store.load(run_id).state == "Completed", timeout, 0.05), (
            f"run {run_id} did not complete: {store.load(run_id).state}"
        )
        return store.load(run_id)


def chain_steps() -> list[str]:
    return [f"step_{index}" for index in range(STEPS)]
