"""Retention: forget finished runs older than a cut-off, never one that someone holds.

A long-running daemon records every run; without pruning the store only grows.
Each candidate is claimed (not forced) before it is deleted, so a run that
another process is resuming at that moment is skipped (its claim wins or ours
does, never both), and its state is checked again under our claim. The delete
itself is fenced by our claim's epoch: a forced resume that lands between our
claim and our delete raises ``StaleEpoch`` there, and the run is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

from actors import NodeState, PersistenceError, RunBusy, StaleEpoch
from runtime.store._protocol import CheckpointStore

__all__ = ["FINISHED_STATES", "parse_duration", "prune_runs"]

log = logging.getLogger(__name__)

FINISHED_STATES: Final = (str(NodeState.COMPLETED), str(NodeState.CANCELED))
"""What ``prune`` forgets by default. ``Failed`` runs are kept unless asked: they may be resumed."""

_PRUNABLE: Final = frozenset({*FINISHED_STATES, str(NodeState.FAILED)})
_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CLAIM_LEASE: Final = 30.0


def prune_runs(
    store: CheckpointStore,
    *,
    older_than: float,
    now: float,
    owner: str,
    states: Iterable[str] = FINISHED_STATES,
    dry_run: bool = False,
) -> list[str]:
    """Delete runs in ``states`` last updated more than ``older_than`` seconds before ``now``.

    Returns the ids deleted (or, with ``dry_run``, that would be). A run whose
    lease is live, or that another process claims first, is skipped.

    Raises:
        ValueError: ``older_than`` is negative, or a state is not a finished one
            (``Completed``, ``Canceled``, ``Failed``).
    """
    if isinstance(older_than, bool) or not isinstance(older_than, int | float) or older_than < 0:
        raise ValueError(f"older_than must be a number of seconds >= 0, got {older_than!r}")
    wanted = frozenset(states)
    if isinstance(states, str) or not wanted or not wanted <= _PRUNABLE:
        raise ValueError(
            f"states must be some of {sorted(_PRUNABLE)} (finished runs only), got {states!r}"
        )
    cutoff = now - older_than
    candidates = [
        s.run_id
        for s in store.list()
        if s.state in wanted
        and s.updated_at <= cutoff
        and (s.lease_until is None or s.lease_until <= now)
    ]
    if dry_run:
        return candidates
    pruned = []
    for run_id in candidates:
        try:
            epoch = store.claim(run_id, owner=owner, lease=_CLAIM_LEASE)
        except RunBusy:
            continue  # someone took it since we looked: it is theirs now
        try:  # under our claim nobody else writes it: decide on what it holds now
            checkpoint = store.load(run_id)
        except PersistenceError as exc:
            log.warning("run %s not pruned: %s", run_id, exc)
            store.release(run_id, epoch=epoch)
            continue
        if checkpoint.state not in wanted or checkpoint.updated_at > cutoff:
            store.release(run_id, epoch=epoch)
            continue
        try:
            store.delete(run_id, epoch=epoch)
        except StaleEpoch:
            log.info("run %s not pruned: it was taken over while pruning", run_id)
            continue
        log.info("run %s (%s) pruned", run_id, checkpoint.state)
        pruned.append(run_id)
    return pruned


def parse_duration(text: str) -> float:
    """``"90"``, ``"45s"``, ``"30m"``, ``"12h"``, ``"7d"`` -> seconds."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:], None)
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise ValueError(
            f"not a duration: {text!r} (use seconds, or a number with s, m, h or d: 7d)"
        ) from None
    if not seconds >= 0 or seconds == float("inf"):
        raise ValueError(f"not a duration: {text!r} (must be finite and >= 0)")
    return seconds
