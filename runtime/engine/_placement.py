"""Where a step runs (pinned, round-robin, or an adaptive strategy), remote steps, failover.

A remote step is a ``run_step`` request to the chosen node's ``$system``; its
result comes back as a ``StepOutcome``. A step whose node goes down or leaves
is placed again on a live node (at-least-once).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from actors import (
    NodeState,
    PermanentError,
    StepResult,
)
from actors import events as ev
from runtime.cluster import NodeLost, RunStep, StepOutcome  # step protocol
from runtime.engine._run_model import (
    CoordinatorBase,
    _has_wire_name,
    _Node,
    _NodeReport,
    _Waiting,
)
from runtime.store import decode_value, encode_value
from runtime.workflow import (
    PlacementStrategy,
    Task,
    qualified_name,
)
from transport import NodeDown, WorkflowError

__all__ = ["RemotePlacement"]

log = logging.getLogger(__name__)


class RemotePlacement(CoordinatorBase):
    """Where a step runs, remote steps, and re-placement when a node is lost."""

    def _place(
        self,
        key: str,
        wf: Task,
        exclude: frozenset[str],
        placement: PlacementStrategy | None,
    ) -> str:
        if self._cluster is None or wf.on == self._node_name:
            return self._node_name
        if wf.on is None and not _has_wire_name(wf):
            return self._node_name  # a lambda or local function can only run here
        if wf.on is not None or placement is None:
            return self._cluster.place(wf.on, exclude)
        candidates = self._cluster.candidates(exclude)
        chosen = placement.choose(key, self._book.loads(candidates))
        if chosen not in candidates:
            raise PermanentError(
                f"placement strategy {placement!r} chose {chosen!r}, not one of {candidates}"
            )
        return chosen

    def _remote(self, key: str, host: str) -> _Node:
        node = _Node(None, next(self._incarnations), threading.Event(), host=host)
        self._nodes[key] = node
        self._hosts_used.add(host)
        return node

    def _send_remote(
        self,
        key: str,
        node: _Node,
        wf: Task,
        ctx: Any,
        attempt: int,
        tokens: dict[str, int],
        exclude: frozenset[str],
    ) -> bool:
        """Ask ``node.host`` to run the step; on a refusal, fail the attempt at once.

        A placed (unpinned) step whose node went down or left between placement
        and sending is placed again, on another node.
        """
        assert self._cluster is not None
        try:
            request = RunStep(
                self.run_id,
                key,
                node.incarnation,
                attempt,
                qualified_name(wf.fn),
                tokens,
                encode_value(ctx, what=f"run {self.run_id} step {key!r} context", root="context"),
            )
            self._cluster.send_step(node.host, request)
        except WorkflowError as exc:
            if isinstance(exc, NodeDown) and wf.on is None:
                log.info("run %s: step %s not sent to %s: %s", self.run_id, key, node.host, exc)
                self._replace(key, node.host, exclude)
                return False
            waiting = self._waiting.pop(key)
            node.state = NodeState.FAILED
            waiting.cont(StepResult(key, NodeState.FAILED, attempt, error=exc))
            return False
        return True

    def _on_remote_report(self, message: StepOutcome) -> None:
        key, state = message.key, message.state
        node = self._nodes.get(key)
        if message.sender and (node is None or node.host != message.sender):
            # Only the node the step was placed on may report it (by its authenticated name).
            log.warning(
                "run %s: result for %s from %s dropped (not its node)",
                self.run_id,
                key,
                message.sender,
            )
            return
        output = ctx = None
        error: BaseException | None = message.error
        if message.refused and self._replace_refused(key, message.incarnation, message.attempt):
            return
        payload = message.payload
        if state is NodeState.COMPLETED and payload is not None:
            try:
                output, ctx = decode_value(payload, what=f"run {self.run_id} step {key!r} output")
            except WorkflowError as exc:
                state, error = NodeState.FAILED, exc
        result = StepResult(
            key,
            state,
            message.attempt,
            output,
            ctx,
            error,
            "",
            message.started,
            message.finished,
        )
        self._on_report(_NodeReport(message.incarnation, result))

    def _replace_refused(self, key: str, incarnation: int, attempt: int) -> bool:
        """A draining node refused the step before running it: place it on another node.

        Not an attempt (the step never started there), so no retry budget is
        spent and no ``Retrying`` is emitted. A step pinned to that node, or a
        stale refusal, is not re-placed (False: it is handled as a failure).
        """
        waiting = self._waiting.get(key)
        node = self._nodes.get(key)
        if (
            waiting is None
            or node is None
            or waiting.incarnation != incarnation
            or node.incarnation != incarnation
            or waiting.node_attempt != attempt
            or waiting.scope.canceled
            or waiting.wf.on is not None
        ):
            return False
        log.info(
            "run %s: step %s refused by draining node %s; re-placing", self.run_id, key, node.host
        )
        self._replace(key, node.host, frozenset())
        return True

    def _replace(self, key: str, host: str, exclude: frozenset[str]) -> None:
        """Dispatch the step waiting on ``host`` again elsewhere, as the same attempt.

        ``exclude`` grows with every node tried, so this ends: with every peer
        excluded, the step runs on this node.
        """
        waiting = self._waiting.pop(key)
        self._nodes.pop(key, None)
        self._book.finished(host, ok=False, duration=0.0)
        self._attempts[key] = waiting.attempt - 1
        self._dispatch_again(key, waiting, exclude | {host})

    def _dispatch_again(self, key: str, waiting: _Waiting, exclude: frozenset[str]) -> None:
        """Dispatch the step ``waiting`` describes once more, away from ``exclude``."""
        self._dispatch(
            key,
            waiting.wf,
            waiting.ctx,
            waiting.scope,
            waiting.cont,
            exclude=exclude,
            tokens=waiting.tokens,
            placement=waiting.placement,
        )

    def _on_node_lost(self, lost: NodeLost) -> None:
        """Re-place, on live nodes, every step in flight on a node that went down or left."""
        for key, waiting in list(self._waiting.items()):
            node = self._nodes.get(key)
            if node is None or node.host != lost.node or waiting.scope.canceled:
                continue
            del self._waiting[key]
            self._nodes.pop(key, None)
            self._book.finished(lost.node, ok=False, duration=0.0)
            error = NodeDown(f"node {lost.node} {lost.status} while running step {key!r}")
            self._emit(
                ev.Retrying(self.run_id, key, waiting.attempt + 1, 0.0, error, self._clock.wall())
            )
            self._dispatch_again(key, waiting, frozenset({lost.node}))
