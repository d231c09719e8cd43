"""A real member for the submission tests: ``actorflow node`` in a subprocess.

Everything a fixture starts, it stops (SIGTERM: drain, leave, exit 0); each
wait has a deadline.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runtime import node_command
from tests.support import ROOT

APP = "tests.submit.submit_app"
START_TIMEOUT = 60.0  # a loaded 2-core machine imports slowly


@dataclass
class Node:
    """An ``actorflow node`` process and what it printed."""

    name: str
    process: subprocess.Popen[str]
    address: str = ""
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def seed(self) -> str:
        return f"{self.name}@{self.address}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(10)
        if self.reader is not None:
            self.reader.join(10)  # at end of file once the process is gone
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


def start_node(
    name: str,
    db: Path,
    *,
    keys: Path | None = None,
    join: str | None = None,
    listen: str = "tcp://127.0.0.1:0",
) -> Node:
    """Start ``actorflow node --app tests.submit.submit_app``; returns once it listens."""
    command = node_command(
        name,
        apps=[APP],
        keys=keys,
        plaintext=keys is None,
        db=db,
        drain_timeout=2,
        join=[join] if join else [],
        listen=listen,
    )
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    node = Node(name, process)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            node.lines.append(line.rstrip())
            lines.put(line.rstrip())
        lines.put(None)

    node.reader = threading.Thread(target=read, name=f"read-{name}", daemon=True)
    node.reader.start()
    prefix = f"node {name} up at "
    while True:
        try:
            line = lines.get(timeout=START_TIMEOUT)
        except queue.Empty:
            node.stop()
            pytest.fail(f"node {name} printed nothing for {START_TIMEOUT}s: {node.lines}")
        if line is None:
            node.stop()
            pytest.fail(f"node {name} exited before listening: {node.lines}")
        if line.startswith(prefix):
            node.address = line[len(prefix) :]
            return node


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    started: list[Node] = []

    def start(
        name: str = "n1", *, keys: Path | None = None, listen: str = "tcp://127.0.0.1:0"
    ) -> Node:
        node = start_node(name, tmp_path / f"{name}.db", keys=keys, listen=listen)
        started.append(node)
        return node

    yield start
    for node in reversed(started):
        node.stop()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One plaintext member shared by a module's tests (their runs do not interfere)."""
    db = tmp_path_factory.mktemp("node") / "state.db"
    started = start_node("n1", db)
    yield started
    assert started.stop() == 0, started.lines
