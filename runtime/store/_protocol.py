"""Checkpoint records and the ``CheckpointStore`` interface shared by every store.

Ownership of a run is a lease plus an epoch (a fencing token):

* ``claim`` takes the run for ``owner`` until ``clock.wall() + lease`` and bumps
  the run's epoch (1 for a run never seen). It raises ``RunBusy`` while another
  owner's lease is live, unless ``force=True``. Each resume takes a new epoch.
* ``save`` is accepted only when ``checkpoint.epoch`` equals the run's current
  epoch; otherwise ``StaleEpoch``: a paused "zombie" that lost the run cannot
  overwrite the new owner's checkpoints. Epochs only ever grow.
* ``renew`` extends the lease of the current epoch (``StaleEpoch`` otherwise,
  also after ``release``); ``release`` gives the lease up so another process can
  claim without ``force``, and is a no-op for a stale epoch.

``delete`` forgets a run entirely, including its epoch: a zombie of a deleted
run gets ``StaleEpoch``, but run ids must not be reused after ``delete`` (the
epochs of a re-created run start again at 1).

A run that was claimed but never saved is listed (``has_checkpoint=False``) but
``load`` raises ``PersistenceError`` for it: a run never silently loads as fresh.

Every store method is thread-safe and raises only ``PersistenceError`` (or its
subclasses ``StaleEpoch`` / ``RunBusy``) for storage failures, and
``ValueError`` for invalid arguments.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from actors import PersistenceError, RunBusy, StaleEpoch

__all__ = [
    "COMPLETED_STEP_STATE",
    "Checkpoint",
    "CheckpointStore",
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
    """The durable state of one step of a run; ``output`` is encoded by the value codec."""

    step: str
    state: str
    attempts: int
    output: bytes | None
    error: str | None
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class Checkpoint:
    """A run's durable state: encoded context, step records, and the writer's epoch."""

    run_id: str
    workflow: str
    fingerprint: str
    state: str
    context: bytes
    steps: Mapping[str, StepRecord]
    epoch: int
    created_at: float
    updated_at: float
    meta: Mapping[str, str] = field(default_factory=dict)


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
    """Durable run state, fenced by epochs; see the module docstring for the contract."""

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

    def save(self, checkpoint: Checkpoint, *, changed_steps: Iterable[str] | None = None) -> None:
        """Write the run and the changed steps (all when None) atomically.

        A key in ``changed_steps`` that is absent from ``checkpoint.steps`` is
        deleted; with ``changed_steps=None`` the stored steps become exactly
        ``checkpoint.steps``.

        Raises:
            StaleEpoch: ``checkpoint.epoch`` is not the run's current epoch.
        """
        ...

    def load(self, run_id: str) -> Checkpoint:
        """Read the last saved checkpoint; PersistenceError if unknown or corrupt."""
        ...

    def delete(self, run_id: str) -> None:
        """Forget the run and its steps; a no-op for an unknown run."""
        ...

    def list(self) -> builtins.list[RunSummary]:
        """Every known run, oldest first."""
        ...

    def close(self) -> None:
        """Release resources; idempotent. Later calls raise PersistenceError."""
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


def check_checkpoint(checkpoint: Checkpoint) -> None:
    """Reject a malformed checkpoint before anything is written."""
    check_run_id(checkpoint.run_id)
    if not isinstance(checkpoint.context, bytes):
        raise ValueError(
            f"run {checkpoint.run_id}: checkpoint.context must be bytes (use encode_value), "
            f"got {type(checkpoint.context).__name__}"
        )
    for key, step in checkpoint.steps.items():
        if not isinstance(step, StepRecord) or step.step != key:
            raise ValueError(
                f"run {checkpoint.run_id}: checkpoint.steps[{key!r}] must be a StepRecord "
                f"whose key is {key!r}, got {step!r}"
            )
        if step.output is not None and not isinstance(step.output, bytes):
            raise ValueError(
                f"run {checkpoint.run_id}: step {key!r} output must be bytes or None, "
                f"got {type(step.output).__name__}"
            )
    for name, value in checkpoint.meta.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValueError(
                f"run {checkpoint.run_id}: checkpoint.meta must map str to str, "
                f"got {name!r}: {value!r}"
            )


def steps_to_write(
    checkpoint: Checkpoint, changed_steps: Iterable[str] | None
) -> tuple[builtins.list[StepRecord], builtins.list[str]]:
    """Split the requested step keys into records to upsert and keys to delete."""
    if changed_steps is None:
        return builtins.list(checkpoint.steps.values()), []
    if isinstance(changed_steps, str):  # a lone key would be iterated per character
        raise ValueError(f"changed_steps must be an iterable of keys, got {changed_steps!r}")
    upserts: builtins.list[StepRecord] = []
    deletes: builtins.list[str] = []
    for key in dict.fromkeys(changed_steps):
        step = checkpoint.steps.get(key)
        if step is None:
            deletes.append(key)
        else:
            upserts.append(step)
    return upserts, deletes


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
