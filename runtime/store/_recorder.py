"""The recorder that writes a run's checkpoints.

What a run's history holds (see ``runtime.store._protocol``): a header written
once when the run starts (the workflow's name and structural fingerprint, the
context the run started with, the run's settings), then one record per
finished step, appended: its state, attempts, timings, error text, and for a
completed step its output together with the context right after it. Resuming
replays the workflow from the start: a step recorded completed is not run
again; it hands on its recorded output and context. So a completed step never
runs twice, and at most the steps in flight at a crash run again
(at-least-once: key side effects by ``current_step().idempotency_key``).

A checkpoint appends the records not yet written and updates the run's state:
its cost does not grow with the number of steps already recorded. The
recorder keeps only the records not yet written and the set of completed keys.

The run's outcome is stored once: a Completed run whose output is the output
its last completed step recorded (byte for byte, once encoded) stores a
reference to that step, not a second copy; any other output is stored once,
encoded.

Writes are fenced: the recorder holds the epoch its claim returned, and the
store refuses a write from an older epoch (``StaleEpoch``), so a paused
"zombie" coordinator cannot overwrite the run's new owner.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from actors import Clock, NodeState, PersistenceError
from runtime.store._codec import decode_value, encode_value
from runtime.store._protocol import (
    Checkpoint,
    CheckpointStore,
    Outcome,
    RunHeader,
    StepRecord,
    is_completed,
)
from runtime.workflow import CheckpointStrategy, StepProgress

log = logging.getLogger(__name__)

__all__ = [
    "Replay",
    "RunRecorder",
    "new_owner_id",
    "owner_is_dead",
    "replay_from",
    "run_outcome",
    "stored_output",
]


def host_id() -> str:
    """This host's name in owner ids: ``$ACTORFLOW_HOST_ID``, else the host name.

    Processes that name themselves as different hosts never judge each other's
    claims by pid, only by lease (how the multi-host tests run on one machine).
    """
    return os.environ.get("ACTORFLOW_HOST_ID") or socket.gethostname()


def new_owner_id() -> str:
    """``host:pid:nonce``: who holds a run's lease, readable by people and by ``owner_is_dead``."""
    return f"{host_id()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str | None) -> bool:
    """True when ``owner`` names a process on this host that no longer exists."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != host_id() or not pid_text.isdigit():
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
    """Writes one run's history under the epoch its claim returned.

    ``records`` are the steps already recorded when resuming (None for a fresh
    run): ``start`` then appends the Running state instead of writing the
    header, unless ``rewrite_header`` is set (the run now follows a changed
    workflow). Used only from the run coordinator's thread. Every method may
    raise ``PersistenceError`` (``StaleEpoch`` when another process took the run).
    ``on_write`` is told the seconds each successful store write took (metrics).
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
        records: Mapping[str, StepRecord] | None = None,
        settings: Mapping[str, str] | None = None,
        on_write: Callable[[float], None] | None = None,
    ) -> None:
        self.store = store
        self._on_write = on_write
        self.run_id = run_id
        self.workflow = workflow
        self.fingerprint = fingerprint
        self.epoch = epoch
        self.strategy = strategy
        self.rewrite_header = False
        self._clock = clock
        self._header = RunHeader(
            run_id, workflow, fingerprint, initial_context, created_at, dict(settings or {})
        )
        self._resumed = records is not None
        self._completed = {k for k, r in (records or {}).items() if is_completed(r.state)}
        self._unsaved: dict[str, StepRecord] = {}  # in the order they are to be appended
        self._last_completed: tuple[str, bytes] | None = None  # (step, [output, ctx] encoded)
        self._last_write = clock.now()

    @staticmethod
    def encode_context(run_id: str, ctx: Any) -> bytes:
        return encode_value(ctx, what=f"run {run_id} context", root="context")

    def _record(self, record: StepRecord) -> None:
        self._unsaved.pop(record.step, None)  # a step recorded again: only its last record
        self._unsaved[record.step] = record

    def _timed(self, began: float) -> None:
        if self._on_write is not None:
            self._on_write(time.perf_counter() - began)

    def _write(self, state: str, outcome: Outcome | None = None) -> None:
        began = time.perf_counter()
        self.store.append(
            self.run_id,
            epoch=self.epoch,
            records=list(self._unsaved.values()),
            state=state,
            updated_at=self._clock.wall(),
            outcome=outcome,
        )
        self._timed(began)
        self._unsaved.clear()
        self._last_write = self._clock.now()

    def start(self) -> None:
        """Write the header of a fresh run (or a rewritten one); a resume appends Running."""
        if self._resumed and not self.rewrite_header:
            self._write(str(NodeState.RUNNING))
            return
        began = time.perf_counter()
        self.store.start(
            self._header,
            epoch=self.epoch,
            state=str(NodeState.RUNNING),
            updated_at=self._clock.wall(),
        )
        self._timed(began)
        self._last_write = self._clock.now()

    def step_completed(
        self,
        key: str,
        *,
        output: Any,
        ctx: Any,
        attempts: int,
        started_at: float | None,
        finished_at: float | None,
        node: str | None = None,
        strategy: CheckpointStrategy | None = None,
        write: bool = True,
    ) -> bool:
        """Record a completed step; True when the strategy says it is due to be written.

        ``node`` names where its attempt ran. With ``write=False`` a due record
        is not written here: the caller writes it (with others that became due
        meanwhile) by ``flush()``.
        """
        data = encode_value(
            [output, ctx], what=f"run {self.run_id} step {key!r} output", root="[output, context]"
        )
        self._record(
            StepRecord(
                key,
                str(NodeState.COMPLETED),
                attempts,
                data,
                None,
                started_at,
                finished_at,
                node,
            )
        )
        self._completed.add(key)
        self._last_completed = (key, data)
        completed = len(self._completed)
        progress = StepProgress(self.run_id, key, completed, self._clock.now() - self._last_write)
        if (strategy or self.strategy).due(progress):
            if write:
                self._write(str(NodeState.RUNNING))
            return True
        return False

    def flush(self) -> None:
        """Write every record not written yet, in one append (nothing if there is none)."""
        if self._unsaved:
            self._write(str(NodeState.RUNNING))

    def step_failed(
        self,
        key: str,
        *,
        error: BaseException,
        attempts: int,
        started_at: float | None,
        finished_at: float | None,
        node: str | None = None,
    ) -> None:
        """Record a step that failed for good (its last attempt ran on ``node``), and write."""
        text = f"{type(error).__module__}.{type(error).__qualname__}: {error}"
        self._record(
            StepRecord(
                key, str(NodeState.FAILED), attempts, None, text, started_at, finished_at, node
            )
        )
        self._completed.discard(key)
        if self._last_completed is not None and self._last_completed[0] == key:
            self._last_completed = None
        self._write(str(NodeState.RUNNING))

    def finish(
        self, state: NodeState, output: Any = None, error: BaseException | None = None
    ) -> None:
        """Write the final state with the run's outcome, for ``stored_result`` to read."""
        outcome = run_outcome(self.run_id, state, output, error, self._last_completed)
        self._write(str(state), outcome)

    def renew(self, lease: float) -> None:
        self.store.renew(self.run_id, epoch=self.epoch, lease=lease)

    def release(self) -> None:
        self.store.release(self.run_id, epoch=self.epoch)


_PAIR_HEADER: Final = 0x92  # msgpack: an array of 2, the [output, ctx] of a step record
_NOT_RECORDED_BEFORE: Final = "written by a version that did not record outputs"


def run_outcome(
    run_id: str,
    state: NodeState,
    output: Any,
    error: BaseException | None,
    last_completed: tuple[str, bytes] | None = None,
) -> Outcome | None:
    """The outcome to store: an output that cannot be encoded is noted, not fatal.

    ``last_completed`` is ``(step, record output)`` of the last completed step
    recorded: when ``output`` encodes to that record's output half, the outcome
    refers to the step instead of storing the output a second time.
    """
    if state is NodeState.COMPLETED:
        try:
            data = encode_value(output, what=f"run {run_id} output", root="output")
        except PersistenceError as exc:
            log.warning("run %s: output not recorded: %s", run_id, exc)
            return Outcome(unrecorded=str(exc))
        if last_completed is not None and _output_half_is(last_completed[1], data):
            return Outcome(output_step=last_completed[0])
        return Outcome(output=data)
    if error is not None:
        return Outcome(error=f"{type(error).__module__}.{type(error).__qualname__}: {error}")
    return None


def _output_half_is(pair: bytes, output: bytes) -> bool:
    """Whether ``pair`` (``[a, b]`` encoded) encodes ``a`` as ``output``.

    msgpack is prefix-free: if ``output`` is a whole value and ``pair``'s first
    element starts with it, that element is ``output``."""
    return (
        len(pair) > len(output)
        and pair[0] == _PAIR_HEADER
        and memoryview(pair)[1 : 1 + len(output)] == output
    )


def stored_output(checkpoint: Checkpoint) -> Any:
    """The output recorded for a Completed run.

    Raises:
        PersistenceError: the run is not Completed (naming its state and error),
            its output was not recorded (and why), or the record is unreadable.
    """
    run_id, outcome = checkpoint.run_id, checkpoint.outcome or Outcome()
    if checkpoint.state != str(NodeState.COMPLETED):
        detail = f" ({outcome.error})" if outcome.error else ""
        raise PersistenceError(
            f"run {run_id} is {checkpoint.state or 'not started'}{detail}: it has no output"
        )
    if outcome.output is not None:
        return decode_value(outcome.output, what=f"run {run_id} output")
    if outcome.output_step is not None:
        step = outcome.output_step
        record = checkpoint.steps.get(step)
        if record is None or record.output is None or not is_completed(record.state):
            raise PersistenceError(
                f"run {run_id}: its output is recorded as step {step!r}'s, "
                "but that step has no completed record"
            )
        return _decode_pair(run_id, step, record.output)[0]
    why = outcome.unrecorded or _NOT_RECORDED_BEFORE
    raise PersistenceError(f"run {run_id}: its output was not recorded: {why}")


def _decode_pair(run_id: str, step: str, data: bytes) -> tuple[Any, Any]:
    value = decode_value(data, what=f"run {run_id} step {step!r} output")
    if not (isinstance(value, list) and len(value) == 2):
        raise PersistenceError(f"run {run_id}: step {step!r} output has an unexpected shape")
    return value[0], value[1]


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
        completed[key] = _decode_pair(checkpoint.run_id, key, record.output)
    return Replay(completed, dict(checkpoint.steps))
