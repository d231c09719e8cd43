"""A paused former owner is fenced off; two adopters race and one wins; the database restarts."""

from __future__ import annotations

import signal

import pytest

from examples.embedded_postgres import EmbeddedPostgres
from runtime import PostgresStore
from runtime.store import stored_output
from tests.support import wait_until

from .hosts import STEPS, Hosts, chain_steps, load, wait_completed


@pytest.mark.timeout(120)
def test_a_sigstopped_owner_that_wakes_is_fenced_and_writes_nothing(hosts: Hosts) -> None:
    hosts.worker("worker")
    hosts.member("b", adopt=True)
    owner = hosts.member("a", start=("paused",))
    owner.expect("STARTED paused")
    hosts.wait_started("paused", "step_3")
    owner.process.send_signal(signal.SIGSTOP)
    before = load(hosts.url, "paused")

    final = wait_completed(hosts.url, "paused")  # B adopted it (A's lease ran out) and finished
    assert final.epoch == before.epoch + 1
    owner.process.send_signal(signal.SIGCONT)
    done = owner.expect("DONE paused")
    assert done.startswith("DONE paused StaleEpoch"), done
    # A's renewal or append was refused: the history is B's, as B left it.
    assert load(hosts.url, "paused") == final
    assert stored_output(final) == list(range(STEPS))
    ran = hosts.ran("paused")
    completed_before = [s for s, r in before.steps.items() if r.state == "Completed"]
    assert all(ran[step] == 1 for step in completed_before)


@pytest.mark.timeout(120)
def test_two_adopters_racing_for_one_run_exactly_one_takes_it(hosts: Hosts) -> None:
    hosts.worker("worker")
    adopters = [hosts.member("x", adopt=True), hosts.member("y", adopt=True)]
    owner = hosts.member("a", start=("contested",))
    owner.expect("STARTED contested")
    hosts.wait_started("contested", "step_2")
    owner.kill9()
    before = load(hosts.url, "contested")

    final = wait_completed(hosts.url, "contested")
    assert final.epoch == before.epoch + 1  # one claim after A's: exactly one winner
    winners = [host.name for host in adopters if "adopted at epoch" in host.stderr()]
    assert len(winners) == 1, winners
    assert stored_output(final) == list(range(STEPS))
    ran = hosts.ran("contested")
    assert set(ran) == set(chain_steps())
    assert all(ran[s] == 1 for s, r in before.steps.items() if r.state == "Completed")


@pytest.mark.timeout(120)
def test_an_adopting_member_stopped_with_sigterm_hands_its_run_off(hosts: Hosts) -> None:
    hosts.worker("worker")
    hosts.member("b", adopt=True)
    leaving = hosts.member("a", adopt=True, start=("handed",))
    leaving.expect("STARTED handed")
    hosts.wait_started("handed", "step_3")
    leaving.process.send_signal(signal.SIGTERM)
    assert leaving.process.wait(30) == 0

    final = wait_completed(hosts.url, "handed")  # never recorded Canceled: B finished it
    assert final.epoch == 3  # A's claim, the hand-off, B's claim
    assert "adopted at epoch 3" in hosts.started[1].stderr()
    assert stored_output(final) == list(range(STEPS))
    ran = hosts.ran("handed")
    assert set(ran) == set(chain_steps())
    assert sum(count - 1 for count in ran.values()) <= 1  # at most the step in flight, again


@pytest.mark.timeout(120)
def test_a_database_restart_mid_run_pauses_the_run_and_loses_no_checkpoint(
    hosts: Hosts, postgres_server: EmbeddedPostgres
) -> None:
    hosts.worker("worker")
    owner = hosts.member("a", start=("restarted",))
    owner.expect("STARTED restarted")
    hosts.wait_started("restarted", "step_4")
    acknowledged = load(hosts.url, "restarted")
    try:
        postgres_server.stop("immediate")  # like a crash: recovery replays the WAL on start
    finally:
        postgres_server.start()

    assert owner.expect("DONE restarted") == "DONE restarted Completed"
    final = load(hosts.url, "restarted")
    assert stored_output(final) == list(range(STEPS))
    assert final.epoch == acknowledged.epoch  # the owner kept the run throughout
    for step, record in acknowledged.steps.items():  # every acknowledged record survived
        assert final.steps[step].state == record.state
    ran = hosts.ran("restarted")
    assert all(ran[s] == 1 for s, r in acknowledged.steps.items() if r.state == "Completed")


def test_a_call_while_the_database_stays_down_fails_with_a_clear_persistence_error(
    postgres_server: EmbeddedPostgres, postgres_schema: str
) -> None:
    from actors import PersistenceError

    with PostgresStore(postgres_server.url, schema=postgres_schema, reconnect_timeout=1) as store:
        store.claim("r", owner="a", lease=30)
        try:
            postgres_server.stop("immediate")
            with pytest.raises(PersistenceError, match=r"run r: renew in postgresql://") as error:
                store.renew("r", epoch=1, lease=30)
            assert "\n" not in str(error.value)
        finally:
            postgres_server.start()
        assert wait_until(lambda: _renews(store), 30, 0.1)  # back once the server is


def _renews(store: PostgresStore) -> bool:
    from actors import PersistenceError

    try:
        store.renew("r", epoch=1, lease=30)
    except PersistenceError:
        return False
    return True
