"""The app the cluster tests' workers serve: ``actorflow node --app tests.cluster.cluster_app``.

Workers and the test process both import it as ``tests.cluster.cluster_app``
(workers have the repository root on ``PYTHONPATH``), so every task has the
same name ``tests.cluster.cluster_app:<name>`` on both sides. The node a task
runs on is read from ``$CLUSTER_TEST_NODE``, which the tests set per worker
process.

Side effects go to files named in the context (append + fsync per line), so a
test can count how often each step really ran, even in a process killed -9.
Every wait here is bounded (``wait_until``); no task sleeps for a fixed time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pykka

from runtime import ActorSystem, TemporaryError, Workflow, current_step, parallel, task
from tests.support import wait_until
from transport import Address

NODE_ENV = "CLUSTER_TEST_NODE"
WAIT_LIMIT = 30.0  # no task waits longer than this for a file or a state

_system: ActorSystem | None = None  # the worker's system, set by register()


def node_name() -> str:
    return os.environ.get(NODE_ENV, "coordinator")


def append_line(path: str, line: str) -> None:
    """Append one line and fsync it: it survives a kill -9 right after."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def record(ctx: dict[str, Any]) -> str:
    """Log ``<step> <node> <pid>`` to ``ctx["log"]`` (when there is one); returns the step."""
    step = current_step().step
    if "log" in ctx:
        append_line(ctx["log"], f"{step} {node_name()} {os.getpid()}")
    return step


# -- tasks -------------------------------------------------------------------------------


def step(ctx: dict[str, Any]) -> list[str]:
    """Appends its step name to ``ctx["seen"]`` and returns the list: the context's trail."""
    name = record(ctx)
    ctx["seen"] = [*ctx.get("seen", []), name]
    ctx.setdefault("nodes", {})[name] = node_name()
    return list(ctx["seen"])


def boom(ctx: dict[str, Any]) -> None:
    record(ctx)
    raise ValueError(f"bad input {ctx['value']!r}")


def flaky(ctx: dict[str, Any]) -> int:
    """Fails with TemporaryError until it has been called ``ctx["fail_times"]`` times."""
    append_line(ctx["counter"], node_name())
    calls = len(Path(ctx["counter"]).read_text().splitlines())
    if calls <= ctx["fail_times"]:
        raise TemporaryError(f"flaky call {calls} on {node_name()}")
    return calls


def block(ctx: dict[str, Any]) -> str:
    """Logs, then blocks until the file ``ctx["gate"]`` exists (bounded)."""
    record(ctx)
    if not wait_until(Path(ctx["gate"]).exists, WAIT_LIMIT):
        raise TimeoutError(f"gate {ctx['gate']} never appeared")
    return node_name()


def _draining() -> bool:
    # A test app may peek at the worker's drain flag: there is no public probe for it.
    return _system is not None and _system.cluster is not None and _system.cluster.host._draining


def hold_for_drain(ctx: dict[str, Any]) -> str:
    """Runs until its node drains (it then writes ``ctx["drain_seen"]``) and ``ctx["release"]``."""
    record(ctx)
    seen = wait_until(_draining, WAIT_LIMIT)
    if seen:
        append_line(ctx["drain_seen"], node_name())
    if not wait_until(Path(ctx["release"]).exists, WAIT_LIMIT):
        raise TimeoutError(f"release file {ctx['release']} never appeared")
    return f"held on {node_name()}, saw drain: {seen}"


# -- actors -------------------------------------------------------------------------------


class Echo(pykka.ThreadingActor):
    """Answers asks with ``[node, prefix, message]``; remembers tells; forwards by Address."""

    def __init__(self, prefix: str = "echo") -> None:
        super().__init__()
        self.prefix = prefix
        self.told: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, dict) and message.get("op") == "told":
            return list(self.told)
        if isinstance(message, dict) and message.get("op") == "members":
            assert _system is not None
            return _system.members()
        if isinstance(message, dict) and message.get("op") == "whoami":
            assert _system is not None
            return Address(_system.name, self.prefix)  # spawned with its name as prefix
        if isinstance(message, dict) and message.get("op") == "forward":
            # A ref that travelled inside a message: use it to tell its actor.
            assert _system is not None
            _system.ref(message["to"]).tell(["from", node_name(), message["body"]])
            return "forwarded"
        if isinstance(message, dict) and message.get("op") == "fail":
            raise KeyError(f"asked to fail: {message['why']}")
        self.told.append(message)
        return [node_name(), self.prefix, message]


class Unregistered(pykka.ThreadingActor):
    """Never registered on the workers: spawning it remotely must be refused."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        append_line(marker, f"Unregistered started on {node_name()}")


# -- the app hooks (``actorflow node --app tests.cluster.cluster_app``) ---------------------


def workflows() -> list[Workflow[Any, Any]]:
    """Every task a worker may run for peers (registered from these workflows' steps)."""
    return [
        task(step)
        .then(task(boom))
        .then(task(flaky))
        .then(parallel(task(block), task(hold_for_drain)))
        .named("cluster-test-catalog")
    ]


def register(system: ActorSystem) -> None:
    global _system  # noqa: PLW0603 - one system per worker process
    _system = system
    # A worker that hangs can be asked for its threads' stacks (see Worker.stop):
    # ``serve`` answers SIGUSR1 with a dump (runtime._stackdump).
    system.register_actor(Echo)
