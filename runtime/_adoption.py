"""Adoption: a member that keeps taking over runs whose coordinating member is gone.

With a store shared by several hosts (``AdoptingStore``: PostgreSQL), a member
started with ``recover=True`` (``actorflow node --adopt``) scans the store
every ``interval`` seconds and claims each unfinished run whose owner's lease
has expired, then continues it from its last checkpoint with the run's
recorded settings, its steps placed on the live members. Expiry is judged by
the database's clock inside the claim, so no two hosts' clocks are compared;
the claim bumps the run's epoch, so a former owner that wakes up later is
fenced off (``StaleEpoch``) and writes nothing.

A run is adopted within ``lease + interval`` of its owner's last renewal.

``recover_runs`` is the one-shot form (``ActorSystem.recover()``): with a store that
is not shared it judges leases by this host's clock and owners by their pid
on this host, as before.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from actors import NodeState, PersistenceError, RunBusy, SystemShutDown
from runtime._runs import Runs
from runtime.engine import RunHandle
from runtime.store import AdoptingStore, owner_is_dead

__all__ = ["Adopter", "adopt_runs", "recover_runs"]

log = logging.getLogger(__name__)


class Adopter:
    """A thread that calls ``adopt_runs`` every ``interval`` seconds until ``stop``."""

    def __init__(self, runs: Runs, *, interval: float, name: str) -> None:
        if not isinstance(interval, int | float) or isinstance(interval, bool) or interval <= 0:
            raise ValueError(f"adopt_interval must be a number of seconds > 0, got {interval!r}")
        self.interval = float(interval)
        self._runs = runs
        self._failed: set[str] = set()  # runs this member could not continue: not tried again
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"actorflow-adopt-{name}")
        self._thread.daemon = True
        self._thread.start()

    def _loop(self) -> None:
        unreachable = False
        while not self._stopped.wait(self.interval):
            try:
                adopt_runs(self._runs, self._failed)
            except SystemShutDown:
                return
            except PersistenceError as exc:  # the database is away: keep scanning
                if not unreachable:
                    log.warning("adoption scan failed, will keep trying: %s", exc)
                unreachable = True
            else:
                unreachable = False

    def stop(self, timeout: float) -> None:
        self._stopped.set()
        self._thread.join(timeout)


def recover_runs(runs: Runs, now: float) -> list[RunHandle[Any]]:
    """Continue every unfinished run whose owner is gone; their handles.

    ``now`` is this host's wall clock, used only with a store that is not
    shared (a shared one judges leases on its own clock, in ``adopt_runs``).
    """
    if isinstance(runs.store, AdoptingStore):
        return adopt_runs(runs, set())
    handles = []
    for summary in runs.store.list():
        if summary.state not in (str(NodeState.RUNNING), str(NodeState.PENDING)):
            continue
        lease_live = summary.lease_until is not None and summary.lease_until > now
        if lease_live and not owner_is_dead(summary.owner):
            continue
        if summary.workflow not in runs.workflows:
            log.warning(
                "run %s: cannot recover, workflow %r is not registered",
                summary.run_id,
                summary.workflow,
            )
            continue
        # Not a forced claim: two processes recovering at once must not both take the
        # run (the owner is gone, so an unforced claim succeeds for the first of them).
        try:
            handles.append(
                runs.resume(summary.run_id, None, claim_force=False, structure_force=False)
            )
        except RunBusy:
            log.info("run %s: another process recovered it first", summary.run_id)
        except PersistenceError as exc:
            log.error("run %s: not recovered: %s", summary.run_id, exc)
    return handles


def adopt_runs(runs: Runs, failed: set[str]) -> list[RunHandle[Any]]:
    """Claim and continue every run whose owner's lease expired (store-side, one by one).

    The store picks the runs and bumps their epochs on its own clock
    (``AdoptingStore.claim_orphan``). The runs coordinated here are passed
    over (a late renewal of our own must not fence our own coordinator off).
    A run this member cannot continue is released, logged and added to
    ``failed``, which later scans pass over.
    """
    store = runs.store
    assert isinstance(store, AdoptingStore)
    handles: list[RunHandle[Any]] = []
    while not runs.closed:
        claimed = store.claim_orphan(
            owner=runs.settings.owner,
            lease=runs.settings.lease,
            workflows=list(runs.workflows),
            skip=failed | runs.live_run_ids(),
        )
        if claimed is None:
            break
        run_id, epoch = claimed
        log.warning("run %s: its owner's lease expired; adopted at epoch %d", run_id, epoch)
        try:
            prepared = runs.resumable(run_id, None, structure_force=False)
            handles.append(runs.resume_claimed(prepared, epoch))
        except (PersistenceError, ValueError, SystemShutDown) as exc:
            failed.add(run_id)
            log.error("run %s: adopted but not continued: %s", run_id, exc)
            with contextlib.suppress(PersistenceError):
                store.release(run_id, epoch=epoch)
    return handles
