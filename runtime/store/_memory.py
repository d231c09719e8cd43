"""``MemoryStore``: the ``CheckpointStore`` contract in process memory.

For tests and ephemeral runs: nothing survives the process. Same semantics as
``SQLiteStore`` (both pass ``tests/store``'s conformance suite). Thread-safe:
one lock guards every operation, so each call is atomic like a transaction.
Records are immutable and copied in and out, so callers never share state.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from actors import Clock, PersistenceError, RealClock
from runtime.store._protocol import (
    Checkpoint,
    RunSummary,
    StepRecord,
    check_checkpoint,
    check_claim_args,
    check_lease,
    check_run_id,
    is_completed,
    run_busy,
    stale_epoch,
    steps_to_write,
    unknown_run,
    unsaved_run,
)

__all__ = ["MemoryStore"]


@dataclass
class _Run:
    epoch: int
    owner: str | None
    lease_until: float | None
    created_at: float
    checkpoint: Checkpoint | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)


class MemoryStore:
    """A thread-safe in-memory ``CheckpointStore``; lease times read ``clock.wall()``."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else RealClock()
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def claim(self, run_id: str, *, owner: str, lease: float, force: bool = False) -> int:
        check_claim_args(run_id, owner, lease)
        with self._lock:
            self._check_open()
            now = self._clock.wall()
            run = self._runs.get(run_id)
            if run is None:
                run = self._runs[run_id] = _Run(0, None, None, created_at=now)
            elif (
                not force
                and run.owner is not None
                and run.owner != owner
                and run.lease_until is not None
                and run.lease_until > now
            ):
                raise run_busy(run_id, run.owner, run.lease_until, now)
            run.epoch += 1
            run.owner = owner
            run.lease_until = now + lease
            return run.epoch

    def renew(self, run_id: str, *, epoch: int, lease: float) -> None:
        check_lease(lease)
        with self._lock:
            self._check_open()
            run = self._runs.get(run_id)
            if run is None or run.epoch != epoch:
                raise stale_epoch(run_id, epoch, run.epoch if run else None, "renew")
            if run.owner is None:
                raise stale_epoch(run_id, epoch, None, "renew a released lease")
            run.lease_until = self._clock.wall() + lease

    def release(self, run_id: str, *, epoch: int) -> None:
        with self._lock:
            self._check_open()
            run = self._runs.get(run_id)
            if run is not None and run.epoch == epoch:
                run.owner = None
                run.lease_until = None

    def save(self, checkpoint: Checkpoint, *, changed_steps: Iterable[str] | None = None) -> None:
        check_checkpoint(checkpoint)
        upserts, deletes = steps_to_write(checkpoint, changed_steps)
        with self._lock:
            self._check_open()
            run = self._runs.get(checkpoint.run_id)
            if run is None or run.epoch != checkpoint.epoch:
                current = run.epoch if run else None
                raise stale_epoch(checkpoint.run_id, checkpoint.epoch, current, "save")
            if changed_steps is None:
                run.steps.clear()
            for step in upserts:
                run.steps[step.step] = step
            for key in deletes:
                run.steps.pop(key, None)
            # Keep our own copy of meta; the steps mapping is rebuilt on load.
            run.checkpoint = replace(checkpoint, steps={}, meta=dict(checkpoint.meta))

    def load(self, run_id: str) -> Checkpoint:
        check_run_id(run_id)
        with self._lock:
            self._check_open()
            run = self._runs.get(run_id)
            if run is None:
                raise unknown_run(run_id)
            if run.checkpoint is None:
                raise unsaved_run(run_id)
            return replace(
                run.checkpoint,
                steps=dict(run.steps),
                epoch=run.epoch,
                meta=dict(run.checkpoint.meta),
            )

    def delete(self, run_id: str) -> None:
        with self._lock:
            self._check_open()
            self._runs.pop(run_id, None)

    def list(self) -> builtins.list[RunSummary]:
        with self._lock:
            self._check_open()
            summaries = [self._summary(run_id, run) for run_id, run in self._runs.items()]
        return sorted(summaries, key=lambda summary: (summary.created_at, summary.run_id))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._runs.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise PersistenceError("MemoryStore is closed")

    @staticmethod
    def _summary(run_id: str, run: _Run) -> RunSummary:
        checkpoint = run.checkpoint
        return RunSummary(
            run_id=run_id,
            workflow=checkpoint.workflow if checkpoint else "",
            state=checkpoint.state if checkpoint else "",
            epoch=run.epoch,
            owner=run.owner,
            lease_until=run.lease_until,
            created_at=checkpoint.created_at if checkpoint else run.created_at,
            updated_at=checkpoint.updated_at if checkpoint else run.created_at,
            steps_total=len(run.steps),
            steps_completed=sum(1 for step in run.steps.values() if is_completed(step.state)),
            has_checkpoint=checkpoint is not None,
        )
