"""Remote steps seen from both sides: a real worker process counts the attempts it runs
(scraped over HTTP from its own endpoint), the coordinator counts the run-level view,
and the store records which node ran each step."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import ActorSystem, CheckpointStrategy, Fixed, RetryPolicy, SQLiteStore, task
from tests.cluster import cluster_app
from tests.cluster.cluster_kit import LOOPBACK, Cluster, Worker, wait_members
from tests.test_metrics import Samples, scrape_url

pytestmark = pytest.mark.timeout(90)


def named(samples: Samples, prefix: str) -> Samples:
    return {key: v for key, v in samples.items() if key[0].startswith(prefix)}


def test_a_worker_counts_the_steps_it_runs_and_the_coordinator_the_run(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    system = ActorSystem(
        "coordinator",
        listen=LOOPBACK,
        plaintext=True,
        metrics="127.0.0.1:0",
        store=store,
        checkpoint=CheckpointStrategy.AFTER_EACH_STEP,
    )
    cluster = Cluster(system)
    try:
        assert system.address is not None
        worker = Worker("worker-1", system.address, metrics="127.0.0.1:0")
        cluster.workers[worker.name] = worker
        first = worker.wait_line("metrics at http://")
        assert first is not None, worker.output()
        worker_url = first.split(" at ", 1)[1].strip()
        worker.wait_up()
        wait_members(system, {"coordinator", "worker-1"})

        wf = (
            task(cluster_app.step, name="fetch", on="worker-1")
            .then(
                task(cluster_app.flaky, name="shaky", on="worker-1").retry(
                    RetryPolicy(3, Fixed(0.01))
                )
            )
            .then(task(cluster_app.step, name="here", on="coordinator"))
            .named("remote-metrics")
        )
        ctx = {"counter": str(tmp_path / "counter"), "fail_times": 1}
        handle = system.run(wf, ctx)
        assert handle.result(30) == ["fetch", "here"]

        # The worker: what it ran, by task and coordinator, under the hosted names only.
        on_worker = scrape_url(worker_url)

        def hosted(name: str, task_name: str) -> float | None:
            labels = frozenset({("task", task_name), ("coordinator", "coordinator")})
            return on_worker.get((f"actorflow_hosted_{name}", labels))

        assert hosted("steps_started_total", "fetch") == 1
        assert hosted("steps_completed_total", "fetch") == 1
        assert hosted("steps_started_total", "shaky") == 2
        assert hosted("steps_failed_total", "shaky") == 1
        assert hosted("steps_completed_total", "shaky") == 1
        assert hosted("step_duration_seconds_count", "shaky") == 1
        assert hosted("steps_started_total", "here") is None  # ran on the coordinator
        assert named(on_worker, "actorflow_steps_") == {}  # it coordinates no run
        assert on_worker[("actorflow_members_up", frozenset())] == 2

        # The coordinator: the whole run, wherever its steps ran; it hosted nothing.
        assert system.metrics_address is not None
        on_coordinator = scrape_url(f"http://{system.metrics_address}/metrics")

        def run_level(name: str, task_name: str) -> float | None:
            labels = frozenset({("workflow", "remote-metrics"), ("task", task_name)})
            return on_coordinator.get((f"actorflow_{name}", labels))

        assert run_level("steps_completed_total", "fetch") == 1
        assert run_level("steps_completed_total", "here") == 1
        assert run_level("steps_started_total", "shaky") == 2
        assert run_level("steps_retried_total", "shaky") == 1
        assert named(on_coordinator, "actorflow_hosted_") == {}

        # The store says where each step ran.
        steps = store.load(handle.id).steps
        assert {k: r.node for k, r in steps.items()} == {
            "fetch": "worker-1",
            "shaky": "worker-1",
            "here": "coordinator",
        }
    finally:
        assert cluster.stop() == []
        store.close()
