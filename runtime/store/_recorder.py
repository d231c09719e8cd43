"""The recorder that writes a run's checkpoints.

What a run's checkpoint holds (see ``runtime.store._protocol``): the run id, the
workflow's name and structural fingerprint, the context the run started with,
and one record per finished step: its state, attempts, timings, error text,
and for a completed step its output together with the context right after it.
Resuming replays the workflow from the start: a step recorded completed is
not run again; it hands on its recorded output and context. So a completed
step never runs twice, and at most the steps in flight at a crash run again
(at-least-once: key side effects by ``current_step().idempotency_key``).

Writes are fenced: the recorder holds the epoch its claim returned, and the
store refuses a write from an older epoch (``StaleEpoch``), so a paused
"zombie" coordinator cannot overwrite the run's new owner.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any, Final

from actors import Clock, NodeState, PersistenceError
from runtime.store._codec import decode_value, encode_value
from runtime.store._protocol import Checkpoint, CheckpointStore, StepRecord, is_completed
from runtime.workflow import CheckpointStrategy, StepProgress

log = logging.getLogger(__name__)

__all__ = [
    "Replay",
    "RunRecorder",
    "new_owner_id",
    "owner_is_dead",
    "replay_from",
    "stored_output",
]


def new_owner_id() -> str:
    """``host:pid:nonce``: who holds a run's lease, readable by people and by ``owner_is_dead``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` names a process on this host that no longer exists."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class Replay:
    """Steps a resumed run will not run again: key -> (output, context after it)."""

    completed: dict[str, tuple[Any, Any]]
    records: dict[str, StepRecord]


class RunRecorder:
    """Writes one run's checkpoints under the epoch its claim returned.

    Used only from the run coordinator's thread. Every method may raise
    ``PersistenceError`` (``StaleEpoch`` when another process took the run).
    """

    def __init__(
        self,
        store: CheckpointStore,
        *,
        run_id: str,
        workflow: str,
        fingerprint: str,
        epoch: int,
        strategy: CheckpointStrategy,
        clock: Clock,
        initial_context: bytes,
        created_at: float,
        records: dict[str, StepRecord] | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.workflow = workflow
        self.fingerprint = fingerprint
        self.epoch = epoch
        self.strategy = strategy
        self._clock = clock
        self._context = initial_context
        self._created_at = created_at
        self._records: dict[str, StepRecord] = dict(records or {})
        self._unsaved: set[str] = set()
        self._last_write = clock.now()

    @staticmethod
    def encode_context(run_id: str, ctx: Any) -> bytes:
        return encode_value(ctx, what=f"run {run_id} context", root="context")

    def _write(self, state: str, meta: dict[str, str] | None = None) -> None:
        checkpoint = Checkpoint(
            run_id=self.run_id,
            workflow=self.workflow,
            fingerprint=self.fingerprint,
            state=state,
            context=self._context,
            steps=self._records,
            epoch=self.epoch,
            created_at=self._created_at,
            updated_at=self._clock.wall(),
            meta=meta or {},
        )
        self.store.save(checkpoint, changed_steps=sorted(self._unsaved))
        self._unsaved.clear()
        self._last_write = self._clock.now()

    def start(self) -> None:
        self._write(str(NodeState.RUNNING))

    def step_completed(
        self,
        key: str,
        *,
        output: Any,
        ctx: Any,
        attempts: int,
        started_at: float | None,
        finished_at: float | None,
        strategy: CheckpointStrategy | None = None,
    ) -> bool:
        """Record a completed step; returns True when it was written now."""
        data = encode_value(
            [output, ctx], what=f"run {self.run_id} step {key!r} output", root="[output, context]"
        )
        self._records[key] = StepRecord(
            key, str(NodeState.COMPLETED), attempts, data, None, started_at, finished_at
        )
        self._unsaved.add(key)
        completed = sum(1 for r in self._records.values() if is_completed(r.state))
        progress = StepProgress(self.run_id, key, completed, self._clock.now() - self._last_write)
        if (strategy or self.strategy).due(progress):
            self._write(str(NodeState.RUNNING))
            return True
        return False

    def step_failed(
        self,
        key: str,
        *,
        error: BaseException,
        attempts: int,
        started_at: float | None,
        finished_at: float | None,
    ) -> None:
        """Record a step that failed for good, and write at once."""
        text = f"{type(error).__module__}.{type(error).__qualname__}: {error}"
        self._records[key] = StepRecord(
            key, str(NodeState.FAILED), attempts, None, text, started_at, finished_at
        )
        self._unsaved.add(key)
        self._write(str(NodeState.RUNNING))

    def finish(
        self, state: NodeState, output: Any = None, error: BaseException | None = None
    ) -> None:
        """Write the final state with the run's outcome, for ``stored_result`` to read."""
        self._write(str(state), outcome_meta(self.run_id, state, output, error))

    def renew(self, lease: float) -> None:
        self.store.renew(self.run_id, epoch=self.epoch, lease=lease)

    def release(self) -> None:
        self.store.release(self.run_id, epoch=self.epoch)


_OUTPUT_KEY: Final = "output"  # base64 of the encoded output of a Completed run
_ERROR_KEY: Final = "error"  # "module.Type: message" of a Failed or Canceled run
_NO_OUTPUT_KEY: Final = "output_unrecorded"  # why a Completed run's output is not kept


def outcome_meta(
    run_id: str, state: NodeState, output: Any, error: BaseException | None
) -> dict[str, str]:
    """The outcome as checkpoint meta: an output that cannot be encoded is noted, not fatal."""
    if state is NodeState.COMPLETED:
        try:
            data = encode_value(output, what=f"run {run_id} output", root="output")
        except PersistenceError as exc:
            log.warning("run %s: output not recorded: %s", run_id, exc)
            return {_NO_OUTPUT_KEY: str(exc)}
        return {_OUTPUT_KEY: base64.b64encode(data).decode("ascii")}
    if error is not None:
        return {_ERROR_KEY: f"{type(error).__module__}.{type(error).__qualname__}: {error}"}
    return {}


def stored_output(checkpoint: Checkpoint) -> Any:
    """The output recorded for a Completed run.

    Raises:
        PersistenceError: the run is not Completed (naming its state and error),
            its output was not recorded (and why), or the record is unreadable.
    """
    run_id, meta = checkpoint.run_id, checkpoint.meta
    if checkpoint.state != str(NodeState.COMPLETED):
        error = meta.get(_ERROR_KEY)
        detail = f" ({error})" if error else ""
        raise PersistenceError(
            f"run {run_id} is {checkpoint.state or 'not started'}{detail}: it has no output"
        )
    if _OUTPUT_KEY not in meta:
        why = meta.get(_NO_OUTPUT_KEY, "written by a version that did not record outputs")
        raise PersistenceError(f"run {run_id}: its output was not recorded: {why}")
    try:
        data = base64.b64decode(meta[_OUTPUT_KEY], validate=True)
    except (ValueError, TypeError) as exc:
        raise PersistenceError(f"run {run_id}: recorded output is not base64: {exc}") from exc
    return decode_value(data, what=f"run {run_id} output")


def replay_from(checkpoint: Checkpoint) -> Replay:
    """Decode the completed steps of ``checkpoint`` (raises PersistenceError if unreadable)."""
    completed: dict[str, tuple[Any, Any]] = {}
    for key, record in checkpoint.steps.items():
        if not is_completed(record.state):
            continue
        if record.output is None:
            raise PersistenceError(
                f"run {checkpoint.run_id}: completed step {key!r} has no recorded output"
            )
        value = decode_value(record.output, what=f"run {checkpoint.run_id} step {key!r} output")
        if not (isinstance(value, list) and len(value) == 2):
            raise PersistenceError(
                f"run {checkpoint.run_id}: step {key!r} output has an unexpected shape"
            )
        completed[key] = (value[0], value[1])
    return Replay(completed, dict(checkpoint.steps))
