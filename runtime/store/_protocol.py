"""Run history records and the ``CheckpointStore`` interface shared by every store.

A run's durable history has three parts:

* its **header** (``RunHeader``: workflow name and fingerprint, the context it
  started with, when it was created, its settings), written once by ``start``;
* its **step records** (``StepRecord``), appended by ``append`` in order: the
  last record of a step wins, so a step that ran again is simply recorded again;
* its **row**: state, ``updated_at`` and, once finished, its ``Outcome``,
  updated in place by every ``append``.

A checkpoint is one ``append``: O(1) in the number of steps already recorded.
``load`` reads the header, the row and every record in order into a
``Checkpoint``. The header is rewritten only by an explicit ``start`` (a resume
whose workflow changed), never by ``append``.

Ownership of a run is a lease plus an epoch (a fencing token):

* ``claim`` takes the run for ``owner`` until ``clock.wall() + lease`` and bumps
  the run's epoch (1 for a run never seen). It raises ``RunBusy`` while another
  owner's lease is live, unless ``force=True``. Each resume takes a new epoch.
* ``start``, ``append`` and ``delete`` are accepted only when ``epoch`` equals
  the run's current epoch; otherwise ``StaleEpoch``: a paused "zombie" that lost
  the run cannot overwrite the new owner's history, and a pruner cannot delete
  a run that was resumed since it claimed it. Epochs only ever grow.
* ``renew`` extends the lease of the current epoch (``StaleEpoch`` otherwise,
  also after ``release``); ``release`` gives the lease up so another process can
  claim without ``force``, and is a no-op for a stale epoch.

``delete`` forgets a run entirely, including its epoch: a zombie of a deleted
run gets ``StaleEpoch``, but run ids must not be reused after ``delete`` (the
epochs of a re-created run start again at 1).

A run that was claimed but never started is listed (``has_checkpoint=False``),
but ``load`` raises ``PersistenceError`` for it and ``append`` refuses it: a run
never silently loads as fresh.

Every store method is thread-safe and raises only ``PersistenceError`` (or its
subclasses ``StaleEpoch`` / ``RunBusy``) for storage failures, and
``ValueError`` for invalid arguments.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from actors import PersistenceError, RunBusy, StaleEpoch

__all__ = [
    "COMPLETED_STEP_STATE",
    "AdoptingStore",
    "Checkpoint",
    "CheckpointStore",
    "Outcome",
    "RunHeader",
    "RunSummary",
    "StepRecord",
    "is_completed",
]

COMPLETED_STEP_STATE: Final = "completed"
"""A step whose state equals this, case-insensitively, counts in ``steps_completed``.

Steps are written as ``NodeState`` names (``Completed``, ``Failed``, like run
states); files written before that hold lowercase names, read the same way."""


@dataclass(frozen=True)
class StepRecord:
    """The durable state of one step of a run; ``output`` is encoded by the value codec.

    ``node`` names where the recorded attempt ran: the cluster member, or the
    local system's name for a step run in-process; None in records written by
    a version that did not record it.
    """

    step: str
    state: str
    attempts: int
    output: bytes | None
    error: str | None
    started_at: float | None
    finished_at: float | None
    node: str | None = None


@dataclass(frozen=True)
class RunHeader:
    """What a run started with; written once, by ``CheckpointStore.start``."""

    run_id: str
    workflow: str
    fingerprint: str
    context: bytes  # the encoded context the run started with
    created_at: float
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """How a finished run ended, stored once with its final state.

    A Completed run's output is either ``output`` (encoded, stored once) or
    ``output_step``: the output half of that step's last record (a run whose
    output is its last step's output is not stored twice). ``unrecorded`` says
    why a Completed run has neither; ``error`` is a Failed or Canceled run's error.
    """

    output: bytes | None = None
    output_step: str | None = None
    error: str | None = None
    unrecorded: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A run's durable state as ``load`` reads it: header, row, and each step's last record."""

    run_id: str
    workflow: str
    fingerprint: str
    state: str
    context: bytes
    steps: Mapping[str, StepRecord]
    epoch: int
    created_at: float
    updated_at: float
    settings: Mapping[str, str] = field(default_factory=dict)
    outcome: Outcome | None = None


@dataclass(frozen=True)
class RunSummary:
    """One line of ``CheckpointStore.list()``: ownership and progress, no blobs."""

    run_id: str
    workflow: str
    state: str
    epoch: int
    owner: str | None
    lease_until: float | None
    created_at: float
    updated_at: float
    steps_total: int
    steps_completed: int
    has_checkpoint: bool = True


@runtime_checkable
class CheckpointStore(Protocol):
    """Durable run history, fenced by epochs; see the module docstring for the contract."""

    def claim(self, run_id: str, *, owner: str, lease: float, force: bool = False) -> int:
        """Take the run for ``owner`` for ``lease`` seconds; return the new epoch.

        Raises:
            RunBusy: another owner's lease is still live and ``force`` is false.
        """
        ...

    def renew(self, run_id: str, *, epoch: int, lease: float) -> None:
        """Extend the lease to ``lease`` seconds from now. Raises StaleEpoch if not current."""
        ...

    def release(self, run_id: str, *, epoch: int) -> None:
        """Clear owner and lease if ``epoch`` is current; otherwise do nothing."""
        ...

    def start(self, header: RunHeader, *, epoch: int, state: str, updated_at: float) -> None:
        """Write the run's header and state; its recorded steps are kept, its outcome cleared.

        Called once when a run starts; again only to rewrite the header on purpose.

        Raises:
            StaleEpoch: ``epoch`` is not the run's current epoch.
        """
        ...

    def append(
        self,
        run_id: str,
        *,
        epoch: int,
        records: Sequence[StepRecord],
        state: str,
        updated_at: float,
        outcome: Outcome | None = None,
    ) -> None:
        """Append ``records`` and set the run's state, ``updated_at`` and outcome, atomically.

        Returns once the write is durable (as durable as the store is).

        Raises:
            StaleEpoch: ``epoch`` is not the run's current epoch.
            PersistenceError: the run was never started.
            ValueError: a malformed record, or ``outcome.output_step`` names no
                completed step with a recorded output.
        """
        ...

    def load(self, run_id: str) -> Checkpoint:
        """Read the run's history; PersistenceError if unknown, never started, or corrupt."""
        ...

    def delete(self, run_id: str, *, epoch: int) -> None:
        """Forget the run and its steps if it is still at ``epoch``; a no-op if unknown.

        Raises:
            StaleEpoch: the run is at another epoch (someone claimed it since).
        """
        ...

    def list(self) -> builtins.list[RunSummary]:
        """Every known run, oldest first."""
        ...

    def close(self) -> None:
        """Release resources; idempotent. Later calls raise PersistenceError."""
        ...


@runtime_checkable
class AdoptingStore(Protocol):
    """A store shared by several hosts that hands out runs whose owner's lease expired."""

    def claim_orphan(
        self, *, owner: str, lease: float, workflows: Sequence[str], skip: Iterable[str] = ()
    ) -> tuple[str, int] | None:
        """Claim one unfinished run of ``workflows`` whose lease expired: ``(run_id, epoch)``.

        Two callers at once never get the same run; runs in ``skip`` are passed
        over; None when there is none.
        """
        ...

    def release(self, run_id: str, *, epoch: int) -> None:
        """Give a claim back (``CheckpointStore.release``)."""
        ...


# Helpers shared by the store implementations (not part of the public API).


def check_claim_args(run_id: str, owner: str, lease: float) -> None:
    check_run_id(run_id)
    if not isinstance(owner, str) or not owner:
        raise ValueError(f"owner must be a non-empty string, got {owner!r}")
    check_lease(lease)


def check_run_id(run_id: str) -> None:
    if not isinstance(run_id, str) or not run_id:
        raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")


def check_lease(lease: float) -> None:
    if not isinstance(lease, int | float) or isinstance(lease, bool) or not lease > 0:
        raise ValueError(f"lease must be a positive number of seconds, got {lease!r}")


def check_header(header: RunHeader) -> None:
    """Reject a malformed header before anything is written."""
    if not isinstance(header, RunHeader):
        raise ValueError(f"header must be a RunHeader, got {header!r}")
    check_run_id(header.run_id)
    if not isinstance(header.context, bytes):
        raise ValueError(
            f"run {header.run_id}: header.context must be bytes (use encode_value), "
            f"got {type(header.context).__name__}"
        )
    for name, value in header.settings.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError(
                f"run {header.run_id}: header.settings must map str to str, got {name!r}: {value!r}"
            )


def check_append(run_id: str, records: Sequence[StepRecord], outcome: Outcome | None) -> None:
    """Reject malformed records or outcome: O(len(records)), never O(steps recorded)."""
    check_run_id(run_id)
    if not isinstance(records, list | tuple):  # a lone record or a str would be iterated
        raise ValueError(f"run {run_id}: records must be a list of StepRecords, got {records!r}")
    for record in records:
        if not isinstance(record, StepRecord) or not isinstance(record.step, str):
            raise ValueError(f"run {run_id}: records must hold StepRecords, got {record!r}")
        if record.output is not None and not isinstance(record.output, bytes):
            raise ValueError(
                f"run {run_id}: step {record.step!r} output must be bytes or None, "
                f"got {type(record.output).__name__}"
            )
        if record.node is not None and not isinstance(record.node, str):
            raise ValueError(
                f"run {run_id}: step {record.step!r} node must be a str or None, "
                f"got {type(record.node).__name__}"
            )
    if outcome is None:
        return
    if not isinstance(outcome, Outcome):
        raise ValueError(f"run {run_id}: outcome must be an Outcome or None, got {outcome!r}")
    if outcome.output is not None and not isinstance(outcome.output, bytes):
        raise ValueError(f"run {run_id}: outcome.output must be bytes or None")
    if outcome.output is not None and outcome.output_step is not None:
        raise ValueError(f"run {run_id}: an outcome has output or output_step, not both")


def bad_output_step(run_id: str, step: str) -> ValueError:
    return ValueError(
        f"run {run_id}: outcome.output_step {step!r} names no completed step with a recorded output"
    )


def run_busy(run_id: str, owner: str, lease_until: float, now: float) -> RunBusy:
    return RunBusy(
        f"run {run_id} is owned by {owner!r} whose lease runs for another "
        f"{lease_until - now:.1f} s; wait for it to expire or claim with force=True"
    )


def stale_epoch(run_id: str, epoch: int, current: int | None, action: str) -> StaleEpoch:
    if current is None:
        return StaleEpoch(
            f"run {run_id}: cannot {action} with epoch {epoch}: "
            "the run is not claimed (never claimed, or deleted)"
        )
    return StaleEpoch(
        f"run {run_id}: cannot {action} with epoch {epoch}: the run is at epoch {current} "
        "(another process took it over; this writer must stop)"
    )


def unknown_run(run_id: str) -> PersistenceError:
    return PersistenceError(f"run {run_id}: no checkpoint stored (unknown run)")


def unsaved_run(run_id: str) -> PersistenceError:
    return PersistenceError(f"run {run_id}: claimed but no checkpoint was ever saved")


def is_completed(state: str) -> bool:
    """Whether a step record's state means completed (either spelling)."""
    return state.lower() == COMPLETED_STEP_STATE


def holds_output(record: StepRecord | None) -> bool:
    """Whether ``record`` can be an ``Outcome.output_step``: completed, with an output."""
    return record is not None and is_completed(record.state) and record.output is not None
