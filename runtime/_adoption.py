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
"""

from __future__ import annotations

import logging
import threading

from actors import PersistenceError, SystemShutDown
from runtime._runs import Runs

__all__ = ["Adopter"]

log = logging.getLogger(__name__)


class Adopter:
    """A thread that calls ``runs.adopt`` every ``interval`` seconds until ``stop``."""

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
                self._runs.adopt(self._failed)
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
