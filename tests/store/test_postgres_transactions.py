"""Pooled connections stay in autocommit; multi-statement work runs in an explicit block."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from actors import PersistenceError
from runtime.store import PostgresStore
from tests.support import wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def store(postgres_url: str, postgres_schema: str) -> Iterator[PostgresStore]:
    with PostgresStore(postgres_url, schema=postgres_schema) as opened:
        opened.database.transaction(
            "setup", lambda cur: cur.execute("CREATE TABLE txn_t (k int primary key)")
        )
        yield opened


def _rows(store: PostgresStore) -> list[int]:
    def work(cur: Any) -> list[int]:
        cur.execute("SELECT k FROM txn_t ORDER BY k")
        return [row[0] for row in cur.fetchall()]

    return store.database.transaction("read", work, one_statement=True)


def test_a_transaction_whose_connection_dies_midway_commits_nothing_then_once(
    store: PostgresStore,
) -> None:
    tries: list[int] = []

    def work(cur: Any) -> None:
        tries.append(1)
        cur.execute("INSERT INTO txn_t VALUES (%s)", (len(tries),))
        if len(tries) == 1:
            cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        cur.execute("INSERT INTO txn_t VALUES (%s)", (10 + len(tries),))

    store.database.transaction("two inserts", work)
    assert len(tries) == 2
    assert _rows(store) == [2, 12]  # nothing of the first try


def test_a_failed_transaction_leaves_its_connection_usable(store: PostgresStore) -> None:
    store.database.transaction("one", lambda cur: cur.execute("INSERT INTO txn_t VALUES (1)"))

    def clash(cur: Any) -> None:
        cur.execute("INSERT INTO txn_t VALUES (2)")
        cur.execute("INSERT INTO txn_t VALUES (1)")  # unique violation

    for _ in range(5):  # every pooled connection meets the failure at least once
        with pytest.raises(PersistenceError):
            store.database.transaction("clash", clash)
        with pytest.raises(PersistenceError):
            store.database.transaction(
                "clash1",
                lambda cur: cur.execute("INSERT INTO txn_t VALUES (1)"),
                one_statement=True,
            )
    assert _rows(store) == [1]

    def check(cur: Any) -> Any:
        cur.execute("SELECT 1")
        return cur.connection.info.transaction_status, cur.connection.autocommit

    for _ in range(5):
        status, autocommit = store.database.transaction("check", check, one_statement=True)
        assert status == psycopg.pq.TransactionStatus.IDLE
        assert autocommit


def _backend(store: PostgresStore) -> int:
    def work(cur: Any) -> int:
        cur.execute("SELECT pg_backend_pid()")
        return int(cur.fetchone()[0])

    return store.database.transaction("pid", work, one_statement=True)


def test_calls_one_after_another_keep_one_server_process(store: PostgresStore) -> None:
    """The pool hands its idle connections out in turn; a warm one is reused instead."""

    def hold_two(cur: Any) -> None:  # a call inside a call: the pool opens a second one
        cur.execute("SELECT 1")
        _backend(store)

    store.database.transaction("nested", hold_two, one_statement=True)
    assert len({_backend(store) for _ in range(10)}) == 1


def test_a_warm_connection_killed_while_idle_is_replaced_by_the_next_call(
    store: PostgresStore, postgres_url: str
) -> None:
    warm = _backend(store)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (warm,))
    assert _rows(store) == []  # tried again on a new connection
    assert _backend(store) != warm


def test_a_call_waiting_for_the_full_pool_gets_the_connection_a_finished_call_frees(
    postgres_url: str, postgres_schema: str
) -> None:
    """A finished call must not keep its connection warm while another waits on the pool."""
    with PostgresStore(
        postgres_url, schema=postgres_schema, pool_size=1, reconnect_timeout=5
    ) as store:
        store.now()  # the pool's only connection is open (and warm)
        inside, release = threading.Event(), threading.Event()

        def hold(cur: Any) -> None:
            cur.execute("SELECT 1")
            inside.set()
            assert release.wait(30)

        holder = threading.Thread(
            target=store.database.transaction, args=("hold", hold), kwargs={"one_statement": True}
        )
        holder.start()
        assert inside.wait(30)
        waited: list[object] = []
        waiter = threading.Thread(target=lambda: waited.append(_call_or_error(store)))
        waiter.start()
        assert wait_until(lambda: _pool_waiting(store) == 1, timeout=30)
        release.set()
        holder.join(30)
        waiter.join(30)
        assert waited and isinstance(waited[0], float), waited


def _call_or_error(store: PostgresStore) -> object:
    try:
        return store.now()
    except PersistenceError as exc:
        return exc


def _pool_waiting(store: PostgresStore) -> int:
    pool = store.database._pool  # its queue of waiting calls
    assert pool is not None
    return int(pool.get_stats().get("requests_waiting", 0))


def _client_backends(postgres_url: str) -> int:
    """Connections to the server besides the one asking."""
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            " AND pid <> pg_backend_pid()"
        ).fetchone()
        return int(row[0]) if row else 0


def test_closing_the_store_while_threads_call_it_ends_every_call_and_every_connection(
    postgres_url: str, postgres_schema: str
) -> None:
    """Calls in flight (on warm or pooled connections) finish or raise PersistenceError;
    none hangs, and no connection outlives the store."""
    before = _client_backends(postgres_url)
    store = PostgresStore(postgres_url, schema=postgres_schema, pool_size=3)
    calls = [0] * 8
    ended: list[BaseException] = []

    def call_until_closed(index: int) -> None:
        try:
            while True:
                store.now()
                calls[index] += 1
        except BaseException as exc:  # the test looks at what ended the loop
            ended.append(exc)

    callers = [threading.Thread(target=call_until_closed, args=(i,)) for i in range(8)]
    for caller in callers:
        caller.start()
    assert wait_until(lambda: min(calls) >= 5, timeout=30)
    store.close()
    for caller in callers:
        caller.join(30)
    assert not any(caller.is_alive() for caller in callers)
    assert len(ended) == 8 and all(isinstance(exc, PersistenceError) for exc in ended), ended
    assert wait_until(lambda: _client_backends(postgres_url) <= before, timeout=30)
