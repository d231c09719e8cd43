"""Actor state in a store: a fenced lease and the last snapshot per actor key.

A small extension of the store protocol, separate from run history. One
record per ``key`` (a supervised child's ``child/<supervisor>/<child>``, a
singleton's ``singleton/<name>``) holds:

* an **epoch** (a fencing token that only grows) with an **owner** and a
  **lease** (``lease_until``, read from the store's clock);
* the **last snapshot**: encoded state bytes and the epoch that wrote it.

The contract:

* ``claim_actor`` takes the key for ``owner`` and bumps the epoch (1 for a key
  never seen); it returns the new epoch, or ``None`` while another owner's
  lease is live. ``force=True`` takes it anyway (a supervisor, the only
  authority over its child); ``if_epoch=E`` takes it only if the current epoch
  is still ``E`` (a takeover from a holder the failure detector declared down:
  of several members racing, exactly one wins). The same owner may re-claim.
* ``renew_actor`` extends the lease of the current epoch, ``StaleEpoch``
  otherwise; ``release_actor`` clears owner and lease (no-op when stale).
* ``save_snapshot`` replaces the snapshot only when ``epoch`` is the key's
  current epoch: a stale incarnation's write is refused with ``StaleEpoch``.
* ``load_snapshot`` returns the last snapshot (``None`` if never saved);
  ``actor_lease`` returns the current epoch, owner and lease.

Every method is thread-safe and raises only ``PersistenceError`` (or
``StaleEpoch``) for storage failures and ``ValueError`` for bad arguments.
Stores implement it beside ``CheckpointStore`` (``SQLiteStore``, ``MemoryStore``;
``tests/store/test_actor_state.py`` is the conformance suite).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from actors import StaleEpoch

__all__ = ["ActorLease", "ActorSnapshot", "ActorStateStore", "check_actor_key"]


@dataclass(frozen=True)
class ActorLease:
    """Who holds an actor key: its current epoch, owner (None once released) and lease end."""

    key: str
    epoch: int
    owner: str | None
    lease_until: float | None


@dataclass(frozen=True)
class ActorSnapshot:
    """The last snapshot saved under ``key``: encoded state, the epoch that wrote it, when."""

    key: str
    epoch: int
    state: bytes
    updated_at: float


@runtime_checkable
class ActorStateStore(Protocol):
    """Fenced leases and snapshots of actors; see the module docstring for the contract."""

    def claim_actor(
        self,
        key: str,
        *,
        owner: str,
        lease: float,
        force: bool = False,
        if_epoch: int | None = None,
    ) -> int | None:
        """Take ``key`` for ``owner``; the new epoch, or None while another lease is live."""
        ...

    def renew_actor(self, key: str, *, epoch: int, lease: float) -> None:
        """Extend the lease to ``lease`` seconds from now; StaleEpoch if not current."""
        ...

    def release_actor(self, key: str, *, epoch: int) -> None:
        """Clear owner and lease if ``epoch`` is current; otherwise do nothing."""
        ...

    def actor_lease(self, key: str) -> ActorLease | None:
        """The key's epoch, owner and lease; None for a key never claimed."""
        ...

    def save_snapshot(self, key: str, *, epoch: int, state: bytes) -> None:
        """Replace the key's snapshot; StaleEpoch unless ``epoch`` is current."""
        ...

    def load_snapshot(self, key: str) -> ActorSnapshot | None:
        """The last snapshot saved under ``key``, None if none was."""
        ...


def check_actor_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"actor key must be a non-empty string, got {key!r}")


def check_snapshot_args(key: str, epoch: int, state: bytes) -> None:
    check_actor_key(key)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise ValueError(f"actor {key}: epoch must be an int >= 1, got {epoch!r}")
    if not isinstance(state, bytes):
        raise ValueError(
            f"actor {key}: snapshot state must be bytes (use encode_value), "
            f"got {type(state).__name__}"
        )


def stale_actor_epoch(key: str, epoch: int, current: int | None, action: str) -> StaleEpoch:
    if current is None:
        return StaleEpoch(f"actor {key}: cannot {action} with epoch {epoch}: never claimed")
    return StaleEpoch(
        f"actor {key}: cannot {action} with epoch {epoch}: the key is at epoch {current} "
        "(a newer incarnation took over; this one must stop)"
    )


def may_claim(
    current_owner: str | None,
    lease_until: float | None,
    epoch: int,
    *,
    owner: str,
    now: float,
    force: bool,
    if_epoch: int | None,
) -> bool:
    """Whether a claim by ``owner`` of a key at ``epoch`` succeeds (shared by the stores)."""
    if force or (if_epoch is not None and if_epoch == epoch):
        return True
    return (
        current_owner is None or current_owner == owner or lease_until is None or lease_until <= now
    )
