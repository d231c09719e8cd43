"""Where a step attempt runs (pinned, round-robin, or an adaptive strategy), and remote steps.

A remote step is a ``run_step`` request to the chosen node; its result
comes back as a ``StepOutcome`` (decoded by the cluster) that becomes a
``StepResult`` here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from actors import NodeState, PermanentError, StepResult
from runtime.cluster import RunStep, StepOutcome
from runtime.engine._load import LoadBook
from runtime.engine._ports import StepCluster
from runtime.store import decode_value, encode_value
from runtime.workflow import PlacementStrategy, Task, qualified_name
from transport import WorkflowError

__all__ = ["Placement", "RemoteResult"]

log = logging.getLogger(__name__)


def _has_wire_name(task: Task) -> bool:
    try:
        qualified_name(task.fn)
    except WorkflowError:
        return False
    return True


@dataclass(frozen=True)
class RemoteResult:
    """A decoded remote report: which incarnation it answers, and whether it was refused."""

    incarnation: int
    result: StepResult
    refused: bool


class Placement:
    """Chooses nodes and talks to remote ones for one run (coordinator thread only)."""

    def __init__(self, run_id: str, node_name: str, cluster: StepCluster | None) -> None:
        self._run_id = run_id
        self.node_name = node_name
        self._cluster = cluster
        self.book = LoadBook()  # what this run has seen of each node
        self._nodes_used: set[str] = set()

    def choose(
        self, step: str, task: Task, exclude: frozenset[str], strategy: PlacementStrategy | None
    ) -> str:
        """The node of the next attempt of ``step``: this node unless it can run elsewhere.

        Raises:
            PermanentError: no live member registered the task, or ``on=`` pins it to
                one that did not (the step fails at once, see ``Attempts``).
        """
        if self._cluster is None or task.on == self.node_name:
            return self.node_name
        if not _has_wire_name(task):
            if task.on is None:
                return self.node_name  # a lambda or local function can only run here
            raise PermanentError(
                f"step {step!r} is pinned to node {task.on!r}, but its function {task.fn!r} "
                "has no importable name (a lambda or a local function): it can only run on "
                "the coordinator; define it at module level in a module the nodes load "
                "(--app MODULE)"
            )
        name = qualified_name(task.fn)
        if task.on is not None or strategy is None:
            return self._cluster.place(name, task.on, exclude)
        candidates = list(self._cluster.candidates(name, exclude))
        chosen = strategy.choose(step, self.book.loads(candidates))
        if chosen not in candidates:
            raise PermanentError(
                f"placement strategy {strategy!r} chose {chosen!r}, not one of {candidates}"
            )
        return chosen

    def send(
        self,
        node: str,
        step: str,
        task: Task,
        ctx: Any,
        incarnation: int,
        attempt: int,
        tokens: dict[str, int],
    ) -> None:
        """Ask ``node`` to run the step; raises a ``WorkflowError`` if it could not be sent."""
        assert self._cluster is not None
        self._nodes_used.add(node)
        context = encode_value(
            ctx, what=f"run {self._run_id} step {step!r} context", root="context"
        )
        request = RunStep(
            self._run_id, step, incarnation, attempt, qualified_name(task.fn), tokens, context
        )
        self._cluster.send_step(node, request)

    def cancel(self, node: str, step: str) -> None:
        if self._cluster is not None:
            self._cluster.cancel_step(node, self._run_id, step)

    def decode(self, message: StepOutcome) -> RemoteResult:
        """A remote step's outcome as a ``StepResult`` (an undecodable output fails the step)."""
        step, state = message.step, message.state
        output = ctx = None
        error: BaseException | None = message.error
        if state is NodeState.COMPLETED and message.payload is not None:
            what = f"run {self._run_id} step {step!r} output"
            try:
                output, ctx = decode_value(message.payload, what=what)
            except WorkflowError as exc:
                state, error = NodeState.FAILED, exc
        result = StepResult(
            step, state, message.attempt, output, ctx, error, "", message.started, message.finished
        )
        return RemoteResult(message.incarnation, result, message.refused)

    def end_run(self) -> None:
        """The run is over: tell every node it used, so they forget it."""
        if self._cluster is not None:
            for node in self._nodes_used:
                self._cluster.end_run(node, self._run_id)
