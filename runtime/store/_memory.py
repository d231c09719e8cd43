"""``MemoryStore``: the ``CheckpointStore`` contract in process memory.

For tests and ephemeral runs: nothing survives the process. Same semantics as
``SQLiteStore`` (both pass ``tests/store``'s conformance suite). Thread-safe:
one lock guards every operation, so each call is atomic like a transaction.
Records are immutable and kept as given; mappings are copied in and out, so
callers never share mutable state. ``append`` costs O(len(records)): each step's
last record is kept in a dict, and the completed count is kept up to date.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from actors import Clock, PersistenceError, RealClock
from runtime.store._actor_state import (
    ActorLease,
    ActorSnapshot,
    check_actor_key,
    check_snapshot_args,
    may_claim,
    stale_actor_epoch,
)
from runtime.store._protocol import (
    Checkpoint,
    Outcome,
    RunHeader,
    RunSummary,
    StepRecord,
    bad_output_step,
    check_append,
    check_claim_args,
    check_header,
    check_lease,
    check_run_id,
    holds_output,
    is_completed,
    run_busy,
    stale_epoch,
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
    header: RunHeader | None = None
    state: str = ""
    updated_at: float = 0.0
    outcome: Outcome | None = None
    steps: dict[str, StepRecord] = field(default_factory=dict)  # each step's last record
    completed: int = 0  # how many of ``steps`` are completed


@dataclass
class _ActorRow:
    lease: ActorLease
    snapshot: ActorSnapshot | None = None


class MemoryStore:
    """A thread-safe in-memory ``CheckpointStore``; lease times read ``clock.wall()``."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else RealClock()
        self._runs: dict[str, _Run] = {}
        self._actors: dict[str, _ActorRow] = {}
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
                run = self._runs[run_id] = _Run(0, None, None, created_at=now, updated_at=now)
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

    def start(self, header: RunHeader, *, epoch: int, state: str, updated_at: float) -> None:
        check_header(header)
        with self._lock:
            self._check_open()
            run = self._current(header.run_id, epoch, "start")
            run.header = replace(header, settings=dict(header.settings))
            run.created_at = header.created_at
            run.state, run.updated_at, run.outcome = state, updated_at, None

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
        check_append(run_id, records, outcome)
        with self._lock:
            self._check_open()
            run = self._current(run_id, epoch, "append")
            if run.header is None:
                raise PersistenceError(f"run {run_id}: cannot append before the run is started")
            if outcome is not None and outcome.output_step is not None:
                last = {record.step: record for record in records}
                step = outcome.output_step
                if not holds_output(last.get(step, run.steps.get(step))):
                    raise bad_output_step(run_id, step)
            for record in records:
                previous = run.steps.get(record.step)
                run.completed += is_completed(record.state) - (
                    previous is not None and is_completed(previous.state)
                )
                run.steps[record.step] = record
            run.state, run.updated_at, run.outcome = state, updated_at, outcome

    def load(self, run_id: str) -> Checkpoint:
        check_run_id(run_id)
        with self._lock:
            self._check_open()
            run = self._runs.get(run_id)
            if run is None:
                raise unknown_run(run_id)
            header = run.header
            if header is None:
                raise unsaved_run(run_id)
            return Checkpoint(
                run_id=run_id,
                workflow=header.workflow,
                fingerprint=header.fingerprint,
                state=run.state,
                context=header.context,
                steps=dict(run.steps),
                epoch=run.epoch,
                created_at=header.created_at,
                updated_at=run.updated_at,
                settings=dict(header.settings),
                outcome=run.outcome,
            )

    def delete(self, run_id: str, *, epoch: int) -> None:
        with self._lock:
            self._check_open()
            run = self._runs.get(run_id)
            if run is None:
                return
            if run.epoch != epoch:
                raise stale_epoch(run_id, epoch, run.epoch, "delete")
            del self._runs[run_id]

    def list(self) -> builtins.list[RunSummary]:
        with self._lock:
            self._check_open()
            summaries = [self._summary(run_id, run) for run_id, run in self._runs.items()]
        return sorted(summaries, key=lambda summary: (summary.created_at, summary.run_id))

    # -- actor state (runtime.store._actor_state) -----------------------------------------

    def claim_actor(
        self,
        key: str,
        *,
        owner: str,
        lease: float,
        force: bool = False,
        if_epoch: int | None = None,
    ) -> int | None:
        check_actor_key(key)
        check_claim_args(key, owner, lease)
        with self._lock:
            self._check_open()
            now = self._clock.wall()
            row = self._actors.get(key)
            if row is None:
                self._actors[key] = _ActorRow(ActorLease(key, 1, owner, now + lease))
                return 1
            held = row.lease
            if not may_claim(
                held.owner,
                held.lease_until,
                held.epoch,
                owner=owner,
                now=now,
                force=force,
                if_epoch=if_epoch,
            ):
                return None
            row.lease = ActorLease(key, held.epoch + 1, owner, now + lease)
            return row.lease.epoch

    def renew_actor(self, key: str, *, epoch: int, lease: float) -> None:
        check_lease(lease)
        with self._lock:
            self._check_open()
            row = self._actors.get(key)
            if row is None or row.lease.epoch != epoch:
                raise stale_actor_epoch(key, epoch, row.lease.epoch if row else None, "renew")
            if row.lease.owner is None:
                raise stale_actor_epoch(key, epoch, None, "renew a released lease")
            row.lease = replace(row.lease, lease_until=self._clock.wall() + lease)

    def release_actor(self, key: str, *, epoch: int) -> None:
        with self._lock:
            self._check_open()
            row = self._actors.get(key)
            if row is not None and row.lease.epoch == epoch:
                row.lease = replace(row.lease, owner=None, lease_until=None)

    def actor_lease(self, key: str) -> ActorLease | None:
        check_actor_key(key)
        with self._lock:
            self._check_open()
            row = self._actors.get(key)
            return row.lease if row else None

    def save_snapshot(self, key: str, *, epoch: int, state: bytes) -> None:
        check_snapshot_args(key, epoch, state)
        with self._lock:
            self._check_open()
            row = self._actors.get(key)
            if row is None or row.lease.epoch != epoch:
                raise stale_actor_epoch(
                    key, epoch, row.lease.epoch if row else None, "save a snapshot"
                )
            row.snapshot = ActorSnapshot(key, epoch, state, self._clock.wall())

    def load_snapshot(self, key: str) -> ActorSnapshot | None:
        check_actor_key(key)
        with self._lock:
            self._check_open()
            row = self._actors.get(key)
            return row.snapshot if row else None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._runs.clear()
            self._actors.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise PersistenceError("MemoryStore is closed")

    def _current(self, run_id: str, epoch: int, action: str) -> _Run:
        """The run, if ``epoch`` is its current epoch (call under the lock)."""
        run = self._runs.get(run_id)
        if run is None or run.epoch != epoch:
            raise stale_epoch(run_id, epoch, run.epoch if run else None, action)
        return run

    @staticmethod
    def _summary(run_id: str, run: _Run) -> RunSummary:
        header = run.header
        return RunSummary(
            run_id=run_id,
            workflow=header.workflow if header else "",
            state=run.state,
            epoch=run.epoch,
            owner=run.owner,
            lease_until=run.lease_until,
            created_at=run.created_at,
            updated_at=run.updated_at,
            steps_total=len(run.steps),
            steps_completed=run.completed,
            has_checkpoint=header is not None,
        )
