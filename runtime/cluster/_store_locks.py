"""``system.lock()`` and ``wf.locked()`` on a PostgreSQL store: no lock server to lose.

``StoreLockClient`` answers the lock requests of ``Lock`` and of running
workflows (the ``LockClient`` interface) with ``StoreLocks`` (the rows, the
token sequence and the listener in ``runtime.store._postgres_locks``). Every
database call runs off the caller's thread (a coordinator's mailbox never
waits on the database): renew, release and check on a small pool, each
waiting acquire on a thread of its own that tries, then waits for a release
notification or the next poll, until its timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from actors import LockGrant, LockTimeout
from runtime.cluster._locks import LockClient
from runtime.store import PostgresStore, StoreLocks

__all__ = ["StoreLockClient"]

log = logging.getLogger(__name__)


class StoreLockClient(LockClient):
    """A ``LockClient`` whose locks live in a ``PostgresStore`` (see the module docstring)."""

    def __init__(self, store: PostgresStore) -> None:
        super().__init__(local=None, node="the checkpoint store", transport=None)
        self.locks = StoreLocks(store)
        self._calls = ThreadPoolExecutor(max_workers=4, thread_name_prefix="actorflow-lock")
        self._closed = threading.Event()

    def request(self, op: str, fields: dict[str, Any], callback: Callable[[Any], None]) -> None:
        """Send ``op``; ``callback`` gets a LockGrant, True, or an exception (another thread)."""
        if self._closed.is_set():
            callback(LockTimeout("the lock client is closed (actor system shut down)"))
            return
        if op == "acquire":
            threading.Thread(
                target=self._acquire,
                args=(fields, callback),
                name=f"actorflow-lock-wait-{fields['name']}",
                daemon=True,
            ).start()
            return
        self._calls.submit(self._answer, op, fields, callback)

    def _answer(self, op: str, fields: dict[str, Any], callback: Callable[[Any], None]) -> None:
        name, token = fields["name"], fields["token"]
        try:
            if op == "renew":
                self.locks.renew(name, token, fields["lease"])
                answer: Any = LockGrant(name, token, fields["lease"])
            elif op == "release":
                self.locks.release(name, token)
                answer = True
            elif op == "check":
                self.locks.check(name, token)
                answer = True
            else:
                answer = ValueError(f"unknown lock operation {op!r}")
        except Exception as exc:  # noqa: BLE001 - NotLocked, NotLockOwner, PersistenceError...
            answer = exc
        callback(answer)

    def _acquire(self, fields: dict[str, Any], callback: Callable[[Any], None]) -> None:
        name, owner, lease, timeout = (
            fields["name"],
            fields["owner"],
            fields["lease"],
            fields["timeout"],
        )
        deadline = None if timeout is None else time.monotonic() + timeout
        ticket: int | None = None
        try:
            while True:
                seen = self.locks.generation(name)
                token = self.locks.try_acquire(name, owner, lease, ticket=ticket)
                if token is not None:
                    answer: Any = LockGrant(name, token, lease)
                    break
                left = 3600.0 if deadline is None else deadline - time.monotonic()
                if left <= 0 or self._closed.is_set():
                    answer = LockTimeout(f"lock {name!r} not acquired within {timeout}s")
                    break
                if ticket is None:  # it waits: take a place in the queue, then try again
                    ticket = self.locks.enqueue(name)
                    continue
                self.locks.wait_release(name, seen, left)
        except Exception as exc:  # noqa: BLE001 - the store's error is the acquire's answer
            answer = exc
        if ticket is not None:
            self._leave_queue(name, ticket)
        callback(answer)

    def _leave_queue(self, name: str, ticket: int) -> None:
        """Let the next waiter go (a failure here only delays it: the ticket goes quiet)."""
        try:
            self.locks.dequeue(name, ticket)
        except Exception as exc:  # noqa: BLE001 - logged; the ticket stops counting soon
            log.warning("lock %r: could not leave the queue (%s); it expires by itself", name, exc)

    def close(self) -> None:
        """Stop the listener; waiting acquires end with LockTimeout."""
        self._closed.set()
        self.locks.close()
        self._calls.shutdown(wait=False)
