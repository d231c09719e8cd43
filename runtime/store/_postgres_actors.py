"""``ActorStateStore`` on PostgreSQL: fenced leases and snapshots of actors (schema version 3).

One ``actor_state`` row per actor key (``runtime.store._actor_state`` has the
contract): its epoch, owner and lease on the database's clock, and the last
snapshot with its CRC-32 and the epoch that wrote it. A claim locks the row
(``FOR UPDATE``) or inserts it (``ON CONFLICT DO NOTHING``, so of two first
claims one inserts and the other then sees its row), so racing claims at one
epoch have exactly one winner, across hosts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from actors import PersistenceError
from runtime.store._actor_state import (
    ActorLease,
    ActorSnapshot,
    check_actor_key,
    check_snapshot_args,
    may_claim,
    stale_actor_epoch,
)
from runtime.store._protocol import check_claim_args, check_lease
from runtime.store._sqlite_schema import crc

__all__ = ["PostgresActorState"]

T = TypeVar("T")


class PostgresActorState:
    """The actor-state methods of ``PostgresStore`` (a mixin: it brings the transactions)."""

    def _transaction(
        self, action: str, work: Callable[[Any], T], *, one_statement: bool = False
    ) -> T:
        raise NotImplementedError

    def _now(self, cur: Any) -> float:
        raise NotImplementedError

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

        def work(cur: Any) -> int | None:
            now = self._now(cur)
            cur.execute(
                "INSERT INTO actor_state (key, epoch, owner, lease_until) VALUES (%s, 1, %s, %s)"
                " ON CONFLICT (key) DO NOTHING RETURNING 1",
                (key, owner, now + lease),
            )
            if cur.fetchone() is not None:
                return 1
            cur.execute(
                "SELECT epoch, owner, lease_until FROM actor_state WHERE key = %s FOR UPDATE",
                (key,),
            )
            epoch, current_owner, lease_until = cur.fetchone()
            now = self._now(cur)  # the row lock may have been waited for
            if not may_claim(
                current_owner,
                lease_until,
                epoch,
                owner=owner,
                now=now,
                force=force,
                if_epoch=if_epoch,
            ):
                return None
            cur.execute(
                "UPDATE actor_state SET epoch = epoch + 1, owner = %s, lease_until = %s"
                " WHERE key = %s RETURNING epoch",
                (owner, now + lease, key),
            )
            return int(cur.fetchone()[0])

        return self._transaction(f"actor {key}: claim", work)

    def renew_actor(self, key: str, *, epoch: int, lease: float) -> None:
        check_lease(lease)

        def work(cur: Any) -> None:
            now = self._now(cur)
            cur.execute(
                "UPDATE actor_state SET lease_until = %s"
                " WHERE key = %s AND epoch = %s AND owner IS NOT NULL",
                (now + lease, key, epoch),
            )
            if cur.rowcount == 1:
                return
            cur.execute("SELECT epoch FROM actor_state WHERE key = %s", (key,))
            row = cur.fetchone()
            if row is None or row[0] != epoch:
                raise stale_actor_epoch(key, epoch, row and row[0], "renew")
            raise stale_actor_epoch(key, epoch, None, "renew a released lease")

        self._transaction(f"actor {key}: renew", work)

    def release_actor(self, key: str, *, epoch: int) -> None:
        self._transaction(
            f"actor {key}: release",
            lambda cur: cur.execute(
                "UPDATE actor_state SET owner = NULL, lease_until = NULL"
                " WHERE key = %s AND epoch = %s",
                (key, epoch),
            ),
            one_statement=True,
        )

    def actor_lease(self, key: str) -> ActorLease | None:
        check_actor_key(key)

        def work(cur: Any) -> ActorLease | None:
            cur.execute("SELECT epoch, owner, lease_until FROM actor_state WHERE key = %s", (key,))
            row = cur.fetchone()
            return None if row is None else ActorLease(key, int(row[0]), row[1], row[2])

        return self._transaction(f"actor {key}: read lease", work, one_statement=True)

    def save_snapshot(self, key: str, *, epoch: int, state: bytes) -> None:
        check_snapshot_args(key, epoch, state)

        def work(cur: Any) -> None:
            now = self._now(cur)
            cur.execute(
                "UPDATE actor_state SET state = %s, state_crc = %s, state_epoch = %s,"
                " updated_at = %s WHERE key = %s AND epoch = %s",
                (state, crc(state), epoch, now, key, epoch),
            )
            if cur.rowcount != 1:
                cur.execute("SELECT epoch FROM actor_state WHERE key = %s", (key,))
                row = cur.fetchone()
                raise stale_actor_epoch(key, epoch, row and row[0], "save a snapshot")

        self._transaction(f"actor {key}: save snapshot", work)

    def load_snapshot(self, key: str) -> ActorSnapshot | None:
        check_actor_key(key)

        def work(cur: Any) -> Any:
            cur.execute(
                "SELECT state, state_crc, state_epoch, updated_at FROM actor_state WHERE key = %s",
                (key,),
            )
            return cur.fetchone()

        row = self._transaction(f"actor {key}: load snapshot", work, one_statement=True)
        if row is None or row[0] is None:
            return None
        state, state_crc, epoch, updated_at = row
        if crc(bytes(state)) != state_crc:
            raise PersistenceError(f"actor {key}: the stored snapshot is corrupt (CRC mismatch)")
        return ActorSnapshot(key, int(epoch), bytes(state), float(updated_at))
