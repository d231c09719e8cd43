"""Lease locks kept in PostgreSQL: no node has to serve them, any host may die.

A lock is a row of ``store_locks`` (schema version 2): its holder's fencing
token, owner and lease end. Every operation is one statement or one short
transaction on the store's connections, timed by the *database's* clock:

* acquire: one upsert that takes the row only if it is absent or its lease has
  ended; the token is ``nextval('store_lock_tokens')``, so tokens grow strictly
  across all hosts and restarts (a sequence never goes back). The row's owner
  names the request too (``owner#nonce``): an acquire tried again because its
  connection broke may find its own commit landed, and then takes the row again
  with a new token instead of waiting out its own lease;
* renew, release, check: accepted only for the current holder's token while
  its lease runs (an expired lease is not held: ``NotLocked``); release and an
  expiry seen by a waiter wake the waiters through ``NOTIFY``.

Waiters are served in arrival order, whichever host they are on: a waiting
acquire takes a ticket (``store_lock_queue``, schema version 5, tickets from
the ``store_lock_tickets`` sequence) and may take the lock only when no
earlier ticket of a live waiter is queued; an acquire that would not wait, or
a first try, takes it only when nobody is queued (no barging past waiters). A
waiter renews its ticket every time it tries (``seen_until``, database time);
one gone quiet for ``queue_ttl`` seconds (its host died) stops counting, so it
delays the others at most that long; a quiet ticket is deleted after a minute,
and a waiter that was only paused puts its ticket back, keeping its place, when
it tries again. Waiters are woken by ``LISTEN``/``NOTIFY``
on a channel of this schema (a release, a waiter leaving the queue), and poll
at least every ``poll`` seconds anyway (a lease that simply runs out sends no
notification; a lost listener connection must not strand anyone).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Final

from actors import NotLocked, NotLockOwner

if TYPE_CHECKING:
    from runtime.store._postgres import PostgresStore

__all__ = ["StoreLocks"]

log = logging.getLogger(__name__)

# Takes the row if it is this request's own (a retry after a commit whose answer was
# lost: waiters queued since must not stop it), or if it is free (absent or its lease
# ended) and no live waiter queued before ticket %s (NULL: no live waiter at all).
_ACQUIRE: Final = (
    "INSERT INTO store_locks (name, token, owner, lease_until)"
    " SELECT %s, nextval('store_lock_tokens'), %s,"
    " extract(epoch from clock_timestamp())::float8 + %s"
    " WHERE EXISTS (SELECT 1 FROM store_locks AS l WHERE l.name = %s AND l.owner = %s)"
    " OR NOT EXISTS (SELECT 1 FROM store_lock_queue AS q WHERE q.name = %s"
    " AND q.seen_until > extract(epoch from clock_timestamp())::float8"
    " AND (%s::bigint IS NULL OR q.ticket < %s::bigint))"
    " ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, owner = EXCLUDED.owner,"
    " lease_until = EXCLUDED.lease_until"
    " WHERE store_locks.lease_until <= extract(epoch from clock_timestamp())::float8"
    " OR store_locks.owner = EXCLUDED.owner"
    " RETURNING token"
)
_ENQUEUE: Final = (
    "INSERT INTO store_lock_queue (name, ticket, seen_until)"
    " VALUES (%s, nextval('store_lock_tickets'),"
    " extract(epoch from clock_timestamp())::float8 + %s) RETURNING ticket"
)
_FORGET_QUIET: Final = (  # waiters long gone (their tickets stopped counting long ago)
    "DELETE FROM store_lock_queue"
    " WHERE seen_until < extract(epoch from clock_timestamp())::float8 - 60"
)
_STILL_WAITING: Final = (  # puts the ticket back if it was forgotten (its waiter was paused)
    "INSERT INTO store_lock_queue (name, ticket, seen_until)"
    " VALUES (%s, %s, extract(epoch from clock_timestamp())::float8 + %s)"
    " ON CONFLICT (name, ticket) DO UPDATE SET seen_until = EXCLUDED.seen_until"
)
_DEQUEUE: Final = "DELETE FROM store_lock_queue WHERE name = %s AND ticket = %s"
_HOLDER: Final = (
    "SELECT token, lease_until > extract(epoch from clock_timestamp())::float8"
    " FROM store_locks WHERE name = %s FOR UPDATE"
)


class StoreLocks:
    """The lock operations on one ``PostgresStore``, and the listener that wakes waiters."""

    def __init__(self, store: PostgresStore, *, poll: float = 0.5) -> None:
        self._store = store
        self.poll = poll
        # a queued waiter that tried no more for this long (its host died) stops counting
        self.queue_ttl = max(2.0, 4 * poll)
        self.channel = f"actorflow_locks_{store.schema or 'public'}"
        self._changed = threading.Condition()
        self._generation: dict[str, int] = defaultdict(int)
        # Bumped each time the listener (re)registers: a release sent while no LISTEN was
        # in place was never heard, so every waiter tries again then.
        self._listens = 0
        self._closed = threading.Event()
        self._listener: threading.Thread | None = None

    # -- operations (each may raise PersistenceError) ------------------------------------

    def try_acquire(
        self,
        name: str,
        owner: str,
        lease: float,
        *,
        request: str | None = None,
        ticket: int | None = None,
    ) -> int | None:
        """The new fencing token, or None while another holder's lease runs or a waiter
        queued earlier (than ``ticket``; without one: any live waiter) waits for it.

        ``request`` names this acquire (a fresh nonce by default): the same request
        tried again takes the row again, whoever's lease it holds. With ``ticket``
        the waiter's place in the queue is renewed in the same transaction.
        """
        holder = f"{owner}#{request or secrets.token_hex(6)}"

        def work(cur: Any) -> int | None:
            if ticket is not None:
                cur.execute(_STILL_WAITING, (name, ticket, self.queue_ttl))
            cur.execute(_ACQUIRE, (name, holder, lease, name, holder, name, ticket, ticket))
            row = cur.fetchone()
            return None if row is None else int(row[0])

        return self._store.database.transaction(f"lock {name!r}: acquire", work)

    def enqueue(self, name: str) -> int:
        """Queue a waiter for ``name``: its ticket (arrival order across all hosts)."""

        def work(cur: Any) -> int:
            cur.execute(_FORGET_QUIET)
            cur.execute(_ENQUEUE, (name, self.queue_ttl))
            return int(cur.fetchone()[0])

        return self._store.database.transaction(f"lock {name!r}: queue a waiter", work)

    def dequeue(self, name: str, ticket: int) -> None:
        """The waiter with ``ticket`` got the lock or stopped waiting: the next may go."""

        def work(cur: Any) -> None:
            cur.execute(_DEQUEUE, (name, ticket))
            cur.execute("SELECT pg_notify(%s, %s)", (self.channel, name))

        self._store.database.transaction(f"lock {name!r}: leave the queue", work)

    def renew(self, name: str, token: int, lease: float) -> None:
        def work(cur: Any) -> None:
            self._verify(cur, name, token)
            cur.execute(
                "UPDATE store_locks"
                " SET lease_until = extract(epoch from clock_timestamp())::float8 + %s"
                " WHERE name = %s",
                (lease, name),
            )

        self._store.database.transaction(f"lock {name!r}: renew", work)

    def release(self, name: str, token: int) -> None:
        def work(cur: Any) -> None:
            self._verify(cur, name, token)
            cur.execute("DELETE FROM store_locks WHERE name = %s", (name,))
            cur.execute("SELECT pg_notify(%s, %s)", (self.channel, name))

        self._store.database.transaction(f"lock {name!r}: release", work)

    def check(self, name: str, token: int) -> None:
        """Raise NotLockOwner / NotLocked unless ``token`` is the live holder's."""
        self._store.database.transaction(
            f"lock {name!r}: check", lambda cur: self._verify(cur, name, token)
        )

    @staticmethod
    def _verify(cur: Any, name: str, token: int) -> None:
        cur.execute(_HOLDER, (name,))
        row = cur.fetchone()
        if row is None or not row[1]:
            raise NotLocked(f"lock {name!r} is not held")
        if int(row[0]) != token:
            raise NotLockOwner(
                f"lock {name!r}: token {token} is not the holder's (current token {row[0]})"
            )

    # -- waiting -------------------------------------------------------------------------

    def generation(self, name: str) -> tuple[int, int]:
        """Releases of ``name`` heard, and LISTEN registrations, so far (read before trying)."""
        with self._changed:
            return self._generation[name], self._listens

    def wait_release(self, name: str, seen: tuple[int, int], timeout: float) -> None:
        """Until a release of ``name`` after ``seen``, at most ``min(timeout, poll)`` seconds.

        Also returns once the listener (re)registers after ``seen``: a release
        before that was not heard, so the caller must try again.
        """
        self._listen()
        with self._changed:
            self._changed.wait_for(
                lambda: (self._generation[name], self._listens) != seen or self._closed.is_set(),
                min(timeout, self.poll),
            )

    def _listen(self) -> None:
        with self._changed:
            if self._listener is None and not self._closed.is_set():
                self._listener = threading.Thread(
                    target=self._listen_loop, name="actorflow-store-locks", daemon=True
                )
                self._listener.start()

    def _listen_loop(self) -> None:
        import psycopg  # noqa: PLC0415 - optional: the postgres extra

        while not self._closed.is_set():
            try:
                with psycopg.connect(
                    self._store.url, autocommit=True, **self._store.database.connect_kwargs
                ) as conn:
                    conn.execute(f"LISTEN {self.channel}".encode())
                    with self._changed:
                        self._listens += 1
                        self._changed.notify_all()
                    while not self._closed.is_set():
                        # At most a second per wait, so close() need not wait out a long poll.
                        for note in conn.notifies(timeout=min(self.poll, 1.0)):
                            self._woken(note.payload)
            except psycopg.Error as exc:
                log.debug("lock listener lost its connection (%s); polling meanwhile", exc)
                self._closed.wait(self.poll)

    def _woken(self, name: str) -> None:
        with self._changed:
            self._generation[name] += 1
            self._changed.notify_all()

    def close(self) -> None:
        self._closed.set()
        with self._changed:
            self._changed.notify_all()
            listener = self._listener
        if listener is not None:
            listener.join(self.poll + 5.0)
