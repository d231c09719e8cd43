"""The connections of a ``PostgresStore``: one pool, one transaction per call, tried again.

Every call of the store runs ``work(cursor)`` in one transaction on a pooled
connection (or, for a single statement, in autocommit: no ``BEGIN``/``COMMIT``
round trips). Pooled connections stay in autocommit mode; a transaction of
several statements is an explicit ``BEGIN``...``COMMIT`` block on it, so no
call switches the mode (each switch cost a lock and a status check).

A finished call keeps its connection "warm" (out of the pool, most recently
used first) for the next call: the pool hands connections out in turn, so
calls one after another alternated between server processes, which cost
about 45 us per statement on a loopback server against using the same one.
A warm connection goes back to the pool after ``_WARM_FOR`` seconds, where
the pool's own checks (its lifetime, a broken connection) apply. If the
connection breaks (the server restarts, the network blips), the call is tried
again on a new connection until ``reconnect_timeout`` seconds have passed,
then raises ``PersistenceError``; the store's calls are written so that trying
again is safe (see ``runtime.store._postgres``).

Errors: ``psycopg`` errors become ``PersistenceError`` naming the server with
its password hidden (``redact_url``); opening fails in one line for a bad URL,
an unreachable server, a refused login, or a schema of a newer release.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from actors import PersistenceError
from runtime.store._postgres_schema import prepare_schema

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

__all__ = ["Database", "is_postgres_url", "redact_url"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_URL_SCHEMES: Final = ("postgresql://", "postgres://")
_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_PASSWORD: Final = re.compile(r"://[^:/@]*:([^@]*)@")
_QUERY_PASSWORD: Final = re.compile(r"([?&]password=)[^&#]*")
_WARM_FOR: Final = 60.0  # seconds a connection may skip the pool between calls


def is_postgres_url(spec: object) -> bool:
    """Whether ``spec`` is a PostgreSQL URL (``postgresql://`` or ``postgres://``)."""
    return isinstance(spec, str) and spec.startswith(_URL_SCHEMES)


def redact_url(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` parameter) as ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url))


def one_line(exc: BaseException, url: str = "") -> str:
    """The first line of ``exc``'s message, with ``url``'s password (if any) hidden."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    text = text.replace(url, redact_url(url))
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def _secrets(url: str) -> list[str]:
    """The passwords written in ``url`` (user part, ``password=`` parameter)."""
    found = _PASSWORD.search(url)
    secrets = [found.group(1)] if found and found.group(1) else []
    secrets += [m.group(0)[len(m.group(1)) :] for m in _QUERY_PASSWORD.finditer(url)]
    return [secret for secret in secrets if secret]


class Database:
    """A pool of connections to ``url`` (tables in ``schema``), migrated when opened.

    Raises:
        ValueError: not a PostgreSQL URL, a bad schema name or pool size.
        PersistenceError: the database cannot be reached or migrated (one line).
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None,
        pool_size: int,
        connect_timeout: float,
        reconnect_timeout: float,
    ) -> None:
        if not is_postgres_url(url):
            raise ValueError(
                f"PostgresStore needs a postgresql:// URL, got {redact_url(str(url))!r}"
            )
        if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"schema must be a lowercase SQL identifier, got {schema!r}")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"pool_size must be an int >= 1, got {pool_size!r}")
        self.url = url
        self.where = redact_url(url) + (f" (schema {schema})" if schema else "")
        self.schema = schema
        self.reconnect_timeout = float(reconnect_timeout)
        self._kwargs: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}
        if schema is not None:
            self._kwargs["options"] = f"-c search_path={schema}"
        self._migrate()
        self._pool: psycopg_pool.ConnectionPool[Any] | None = self._open_pool(pool_size)
        # Idle connections kept from the pool, the last used on top: (connection, since).
        self._warm: list[tuple[Any, float]] = []
        self._warm_lock = threading.Lock()
        # Calls waiting on the pool (no warm one left): a finished call hands them its own.
        self._waiting = 0

    @property
    def connect_kwargs(self) -> dict[str, Any]:
        """Connection options besides the URL (a connection of one's own: LISTEN)."""
        return dict(self._kwargs)

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        driver = import_psycopg()
        try:
            conn: psycopg.Connection[tuple[Any, ...]] = driver.connect(self.url, **self._kwargs)
        except driver.Error as exc:
            raise PersistenceError(
                f"cannot connect to PostgreSQL at {self.where}: {one_line(exc, self.url)}"
            ) from None
        except ValueError as exc:  # a malformed URL
            raise PersistenceError(
                f"bad PostgreSQL URL {self.where}: {one_line(exc, self.url)}"
            ) from None
        return conn

    def _migrate(self) -> None:
        driver = import_psycopg()
        conn = self._connect()
        try:
            found = prepare_schema(conn, self.where, schema=self.schema)
            if found == 0:
                log.info("checkpoint store %s: created the schema", self.where)
        except driver.Error as exc:
            raise PersistenceError(
                f"cannot open checkpoint store {self.where}: {one_line(exc, self.url)}"
            ) from None
        finally:
            conn.close()

    def _open_pool(self, size: int) -> psycopg_pool.ConnectionPool[Any]:
        import_psycopg()
        import psycopg_pool  # noqa: PLC0415 - optional: the postgres extra

        pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            self.url,
            min_size=1,
            max_size=size,
            kwargs={**self._kwargs, "autocommit": True},
            open=False,
            name="actorflow-store",
            timeout=self.reconnect_timeout,
            reconnect_timeout=max(self.reconnect_timeout, 1.0) * 4,
        )
        pool.open(wait=False)
        return pool

    def transaction(
        self, action: str, work: Callable[[Any], T], *, one_statement: bool = False
    ) -> T:
        """Run ``work(cursor)`` in one transaction and commit it; tried again on a lost connection.

        ``one_statement``: ``work`` runs a single statement, committed on its own
        (autocommit), or only reads.
        """
        driver = import_psycopg()
        deadline = time.monotonic() + self.reconnect_timeout
        warned = False
        while True:
            conn, since = self._connection(action, deadline)
            try:
                return self._attempt(conn, since, work, one_statement)
            except driver.Error as exc:
                if not (conn.broken or conn.closed) or time.monotonic() >= deadline:
                    raise PersistenceError(
                        f"{action} in {self.where}: {one_line(exc, self.url)}"
                    ) from exc
                if not warned:
                    log.warning(
                        "%s in %s: connection lost (%s); trying again for up to %.0f s",
                        action,
                        self.where,
                        one_line(exc, self.url),
                        self.reconnect_timeout,
                    )
                    warned = True
                time.sleep(0.1)

    def _connection(self, action: str, deadline: float) -> tuple[Any, float]:
        """A warm connection, or a pooled one waiting until ``deadline`` (PersistenceError
        after); with the time it left the pool."""
        import psycopg_pool  # noqa: PLC0415 - optional: the postgres extra

        with self._warm_lock:
            if self._warm:
                return self._warm.pop()
            self._waiting += 1
        pool = self._pool
        try:
            if pool is None:
                raise PersistenceError(f"{action}: checkpoint store {self.where} is closed")
            conn = pool.getconn(timeout=max(0.1, deadline - time.monotonic()))
        except psycopg_pool.PoolClosed:
            raise PersistenceError(f"{action}: checkpoint store {self.where} is closed") from None
        except psycopg_pool.PoolTimeout as exc:
            raise PersistenceError(
                f"{action} in {self.where}: the database was unreachable for "
                f"{self.reconnect_timeout:.0f} s: {one_line(exc, self.url)}"
            ) from None
        finally:
            with self._warm_lock:
                self._waiting -= 1
        return conn, time.monotonic()

    def _attempt(self, conn: Any, since: float, work: Callable[[Any], T], one_statement: bool) -> T:
        """One try of a transaction on ``conn``, which is kept warm or goes back to the pool."""
        try:
            if one_statement:
                with conn.cursor() as cur:
                    return work(cur)
            with conn.transaction(), conn.cursor() as cur:  # BEGIN; COMMIT, or ROLLBACK
                return work(cur)
        finally:
            self._put_back(conn, since)

    def _put_back(self, conn: Any, since: float) -> None:
        """Keep ``conn`` warm if it is idle and fine and no call waits on the pool (kept warm,
        the waiting call would never get it); otherwise the pool takes it (or it closes)."""
        driver = import_psycopg()
        healthy = (
            not (conn.broken or conn.closed)
            and conn.pgconn.transaction_status == driver.pq.TransactionStatus.IDLE
        )
        with self._warm_lock:
            pool = self._pool
            if (
                pool is not None
                and healthy
                and not self._waiting
                and time.monotonic() - since < _WARM_FOR
            ):
                self._warm.append((conn, since))
                return
        if pool is not None:
            pool.putconn(conn)
        else:
            conn.close()

    def close(self) -> None:
        with self._warm_lock:
            pool, self._pool = self._pool, None
            warm, self._warm = self._warm, []
        for conn, _since in warm:
            if pool is not None:
                pool.putconn(conn)
        if pool is not None:
            pool.close()


def import_psycopg() -> Any:
    """The psycopg module; PersistenceError naming the extra to install if it is missing."""
    try:
        import psycopg  # noqa: PLC0415 - optional: the postgres extra
        import psycopg_pool  # noqa: F401, PLC0415 - checked here, imported where used
    except ImportError:
        raise PersistenceError(
            "a postgresql:// store needs psycopg: pip install 'actorflow[postgres]'"
        ) from None
    return psycopg
