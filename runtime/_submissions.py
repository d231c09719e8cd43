"""Runs handed to a member by clients (``Client.submit``, ``actorflow submit``).

A client names a workflow this node registered (``register_workflow``, or the
``workflows()`` of an ``--app`` module) and sends the context encoded by
``runtime.store``'s codec (plain data is plain msgpack). This node starts the
run: it coordinates it and checkpoints it in its own store, so the submitter
may exit at once; anyone may ask for the run's state, progress and result
later (``run_info``), from this node's live handles or from its store.

Each submitted run gets a ``ProgressObserver`` writing nowhere, so ``run_info``
can say ``[3/5] 1 running``; the observers of the newest ``keep`` runs are kept.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from actors import NodeState, PersistenceError
from runtime._progress import ProgressObserver
from runtime.store import decode_value, encode_value, stored_output
from transport import RemoteError, WorkflowError

if TYPE_CHECKING:
    from runtime._system import ActorSystem

__all__ = ["MAX_RUN_ID", "RUNS_ANSWERED", "Submissions", "UnknownWorkflow", "check_run_id"]

RUNS_ANSWERED = 1000  # rows of a ``runs`` answer: ~150 KB, well within one frame
MAX_RUN_ID = 128  # a submitted run's id travels in targets (``$run/<id>``, 1024 at most)


def check_run_id(run_id: object) -> str:
    """A run id a client chose: 1-128 printable characters, no whitespace.

    Raises:
        ValueError: anything else, named (a longer id would not fit the run's
            ``$run/<id>`` target: its remote steps' results could never arrive).
    """
    if (
        not isinstance(run_id, str)
        or not 0 < len(run_id) <= MAX_RUN_ID
        or not run_id.isprintable()
        or any(c.isspace() for c in run_id)
    ):
        raise ValueError(
            f"a submitted run id must be 1-{MAX_RUN_ID} printable characters without "
            f"whitespace, got {run_id!r:.80}"
        )
    return run_id


class UnknownWorkflow(WorkflowError, LookupError):
    """A submitted workflow name is not registered on the node (the message lists those that
    are; start the node with ``--app MODULE`` whose ``workflows()`` returns it)."""


UnknownWorkflow.__module__ = "runtime"  # its public name, also on the wire


class _Nowhere(io.StringIO):
    """A text stream that keeps nothing it is given (progress is read, not printed)."""

    def write(self, text: str) -> int:
        return len(text)


class Submissions:
    """The runs clients submitted to one system. See the module docstring."""

    def __init__(self, system: ActorSystem, keep: int = 1000) -> None:
        self._system = system
        self._keep = keep
        self._lock = threading.Lock()
        # run id -> (its progress, its workflow's name), newest last
        self._submitted: OrderedDict[str, tuple[ProgressObserver, str]] = OrderedDict()
        self.contexts: dict[str, Callable[[Any], Any]] = {}  # workflow -> context builder

    def submit(self, workflow: str, ctx: bytes, run_id: str | None) -> str:
        """Start ``workflow`` on the decoded ``ctx``; returns the run id.

        Raises:
            UnknownWorkflow: no workflow of that name is registered here (the
                message lists the names that are).
            PersistenceError: the context cannot be decoded or checkpointed.
            ValueError: ``run_id`` is malformed (``check_run_id``) or in use.
        """
        if run_id is not None:
            check_run_id(run_id)
        known = self._system._runs.workflows
        flow = known.get(workflow)
        if flow is None:
            names = ", ".join(sorted(known)) or "none"
            raise UnknownWorkflow(
                f"node {self._system.name} has no workflow named {workflow!r} (known: {names}); "
                "start the node with --app MODULE whose workflows() returns it"
            )
        value = decode_value(ctx, what=f"context submitted for {workflow!r}")
        builder = self.contexts.get(workflow)
        if builder is not None:
            value = builder(value)
        observer = ProgressObserver(_Nowhere())
        handle = self._system.run(flow, value, run_id=run_id, observers=[observer])
        with self._lock:
            self._submitted[handle.id] = (observer, workflow)
            while len(self._submitted) > self._keep:
                self._submitted.popitem(last=False)
        return handle.id

    def run_info(self, run_id: str) -> dict[str, Any]:
        """What a client sees of a run coordinated here: state, progress, output or error.

        Raises:
            KeyError: this node neither runs it nor has it in its store.
        """
        info: dict[str, Any] = {
            "run": run_id,
            "node": self._system.name,
            "workflow": "",
            "state": None,
            "done": False,
            "output": None,
            "error": None,
            "error_type": None,
            "progress": None,
        }
        with self._lock:
            observer, info["workflow"] = self._submitted.get(run_id, (None, ""))
        progress = observer.progress(run_id) if observer is not None else None
        if progress is not None:
            info["progress"] = {
                "line": progress.line(),
                "done": progress.done,
                "total": progress.total,
                "running": len(progress.running),
            }
        try:
            handle = self._system.handle(run_id)
        except KeyError:
            return self._stored_info(run_id, info)
        state = handle.state
        info["state"] = str(state)
        info["done"] = handle.done()
        if handle.done():
            try:
                output = handle.result(0)
            except BaseException as exc:  # noqa: BLE001 - the run's failure, reported
                info["error_type"] = _type_name(exc)
                info["error"] = str(exc)
            else:
                self._set_output(info, output)
        if info["workflow"] == "":
            info["workflow"] = self._workflow_of(run_id)
        return info

    def _stored_info(self, run_id: str, info: dict[str, Any]) -> dict[str, Any]:
        try:
            checkpoint = self._system.store.load(run_id)
        except PersistenceError:
            raise KeyError(f"node {self._system.name} knows no run {run_id!r}") from None
        info["workflow"] = checkpoint.workflow
        info["state"] = checkpoint.state or None
        info["done"] = checkpoint.state in (str(s) for s in _ENDED)
        if checkpoint.state == str(NodeState.COMPLETED):
            try:
                self._set_output(info, stored_output(checkpoint))
            except PersistenceError as exc:
                info["error_type"], info["error"] = "runtime.PersistenceError", str(exc)
        elif checkpoint.outcome is not None and checkpoint.outcome.error:
            info["error"] = checkpoint.outcome.error
        return info

    def _workflow_of(self, run_id: str) -> str:
        for summary in self._system.runs():
            if summary.run_id == run_id:
                return summary.workflow
        return ""

    @staticmethod
    def _set_output(info: dict[str, Any], output: Any) -> None:
        try:
            info["output"] = encode_value(output, what=f"run {info['run']} output")
        except PersistenceError as exc:
            info["error_type"], info["error"] = "runtime.PersistenceError", str(exc)

    def run_list(self) -> list[dict[str, Any]]:
        """The newest ``RUNS_ANSWERED`` runs this node knows (its store, then live unrecorded
        ones), newest first: every run of a big store would not fit one answer."""
        rows: list[dict[str, Any]] = [
            {
                "run": s.run_id,
                "workflow": s.workflow,
                "state": s.state or None,
                "steps_completed": s.steps_completed,
                "steps_total": s.steps_total,
                "updated_at": s.updated_at,
                "node": self._system.name,
            }
            for s in self._system.runs()
        ]
        return sorted(rows, key=lambda row: row["updated_at"], reverse=True)[:RUNS_ANSWERED]


_ENDED = (NodeState.COMPLETED, NodeState.FAILED, NodeState.CANCELED)


def _type_name(exc: BaseException) -> str:
    if isinstance(exc, RemoteError):
        return exc.type_name
    module = type(exc).__module__
    return type(exc).__qualname__ if module == "builtins" else f"{module}.{type(exc).__qualname__}"
