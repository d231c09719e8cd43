"""kill -9 of the member coordinating a run, at twelve points of it: another member adopts it.

One worker and one adopting member (B) serve the whole module; each test
starts a member A (its own process and host id) that starts one run, kills it
at its point, and checks that B adopted the run within lease + scan
interval, that it completed with the right output, and that no step
checkpointed before the kill ran again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.embedded_postgres import EmbeddedPostgres
from runtime import PostgresStore
from runtime.store import stored_output
from tests.support import wait_until

from .hosts import (
    ADOPT_INTERVAL,
    LEASE,
    STEPS,
    Hosts,
    chain_steps,
    load,
    schema_url,
    wait_completed,
)

# Adoption waits for the lease to run out (at most LEASE after the kill: the owner renews
# every third of it) and the next scan; the margin absorbs a machine loaded by other work.
ADOPTION_MARGIN = 5.0
POINTS = ["started", *[f"step_{index}" for index in range(1, STEPS)]]


@pytest.fixture(scope="module")
def cluster(
    postgres_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hosts]:
    url = schema_url(postgres_server.url, f"t_kill_{uuid.uuid4().hex[:8]}")
    hosts = Hosts(url, Path(tmp_path_factory.mktemp("kill-points")))
    try:
        hosts.worker("worker")
        hosts.member("b", adopt=True)
        yield hosts
    finally:
        hosts.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("point", POINTS)
def test_kill_9_of_the_owner_at_any_point_the_run_is_adopted_and_completes(
    cluster: Hosts, point: str
) -> None:
    run_id = f"kill-{point}"
    owner = cluster.member(f"a-{point}", start=(run_id,))
    owner.expect(f"STARTED {run_id}")
    if point != "started":
        cluster.wait_started(run_id, point)
    owner.kill9()
    killed = time.monotonic()
    before = load(cluster.url, run_id)
    done_before = {step for step, record in before.steps.items() if record.state == "Completed"}

    with PostgresStore(cluster.url) as store:
        assert wait_until(lambda: store.load(run_id).epoch > before.epoch, 60, 0.02)
    adopted_after = time.monotonic() - killed
    assert adopted_after <= LEASE + ADOPT_INTERVAL + ADOPTION_MARGIN

    final = wait_completed(cluster.url, run_id)
    assert final.epoch == before.epoch + 1  # adopted once, by B
    assert stored_output(final) == list(range(STEPS))
    ran = cluster.ran(run_id)
    assert set(ran) == set(chain_steps())
    assert {step: ran[step] for step in done_before} == dict.fromkeys(done_before, 1)
