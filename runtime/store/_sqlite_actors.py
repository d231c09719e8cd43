"""The ``actor_state`` table of ``SQLiteStore``: fenced leases and snapshots of actors.

One row per actor key (see ``runtime.store._actor_state`` for the contract)::

    actor_state  key, epoch, owner, lease_until; state (the last snapshot),
                 state_crc, state_epoch (the epoch that wrote it), updated_at

Created with ``IF NOT EXISTS`` when a file is opened, so a version 2 file of an
older release gains it without a migration (older releases ignore it). Each
function runs inside the caller's transaction (``BEGIN IMMEDIATE`` for writes).
"""

from __future__ import annotations

import sqlite3

from actors import PersistenceError
from runtime.store._actor_state import (
    ActorLease,
    ActorSnapshot,
    may_claim,
    stale_actor_epoch,
)
from runtime.store._sqlite_schema import crc

__all__ = [
    "claim_actor",
    "load_actor_lease",
    "load_snapshot",
    "release_actor",
    "renew_actor",
    "save_snapshot",
]


def claim_actor(
    conn: sqlite3.Connection,
    key: str,
    *,
    owner: str,
    lease: float,
    now: float,
    force: bool,
    if_epoch: int | None,
) -> int | None:
    row = conn.execute(
        "SELECT epoch, owner, lease_until FROM actor_state WHERE key = ?", (key,)
    ).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO actor_state (key, epoch, owner, lease_until) VALUES (?, 1, ?, ?)",
            (key, owner, now + lease),
        )
        return 1
    epoch, current_owner, lease_until = row
    if not may_claim(
        current_owner, lease_until, epoch, owner=owner, now=now, force=force, if_epoch=if_epoch
    ):
        return None
    conn.execute(
        "UPDATE actor_state SET epoch = ?, owner = ?, lease_until = ? WHERE key = ?",
        (epoch + 1, owner, now + lease, key),
    )
    return int(epoch) + 1


def renew_actor(conn: sqlite3.Connection, key: str, *, epoch: int, until: float) -> None:
    row = conn.execute("SELECT epoch, owner FROM actor_state WHERE key = ?", (key,)).fetchone()
    if row is None or row[0] != epoch:
        raise stale_actor_epoch(key, epoch, row and row[0], "renew")
    if row[1] is None:
        raise stale_actor_epoch(key, epoch, None, "renew a released lease")
    conn.execute("UPDATE actor_state SET lease_until = ? WHERE key = ?", (until, key))


def release_actor(conn: sqlite3.Connection, key: str, *, epoch: int) -> None:
    conn.execute(
        "UPDATE actor_state SET owner = NULL, lease_until = NULL WHERE key = ? AND epoch = ?",
        (key, epoch),
    )


def load_actor_lease(conn: sqlite3.Connection, key: str) -> ActorLease | None:
    row = conn.execute(
        "SELECT epoch, owner, lease_until FROM actor_state WHERE key = ?", (key,)
    ).fetchone()
    return None if row is None else ActorLease(key, int(row[0]), row[1], row[2])


def save_snapshot(
    conn: sqlite3.Connection, key: str, *, epoch: int, state: bytes, now: float
) -> None:
    updated = conn.execute(
        "UPDATE actor_state SET state = ?, state_crc = ?, state_epoch = ?, updated_at = ?"
        " WHERE key = ? AND epoch = ?",
        (state, crc(state), epoch, now, key, epoch),
    ).rowcount
    if updated != 1:
        row = conn.execute("SELECT epoch FROM actor_state WHERE key = ?", (key,)).fetchone()
        raise stale_actor_epoch(key, epoch, row and row[0], "save a snapshot")


def load_snapshot(conn: sqlite3.Connection, key: str) -> ActorSnapshot | None:
    row = conn.execute(
        "SELECT state, state_crc, state_epoch, updated_at FROM actor_state WHERE key = ?", (key,)
    ).fetchone()
    if row is None or row[0] is None:
        return None
    state, state_crc, epoch, updated_at = row
    if crc(bytes(state)) != state_crc:
        raise PersistenceError(f"actor {key}: the stored snapshot is corrupt (CRC mismatch)")
    return ActorSnapshot(key, int(epoch), bytes(state), float(updated_at))
