"""Workers that die or leave mid-run: kill -9 re-placement, graceful drain, clean exits.

Each test starts its own coordinator and worker processes (it breaks them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime import (
    Canceled,
    CheckpointStrategy,
    Fixed,
    NodeDown,
    NodeState,
    RetryPolicy,
    SQLiteStore,
    parallel,
    task,
)
from runtime import events as ev
from tests.cluster import cluster_app
from tests.cluster.cluster_kit import (
    WORKERS,
    Cluster,
    is_started,
    log_lines,
    step_counts,
    steps_of,
    wait_path,
)
from tests.support import EventRecorder, wait_until


@pytest.mark.timeout(90)
def test_kill_9_of_a_worker_mid_step_replaces_the_step_on_the_other(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "state.db")
    cluster = cluster_factory(store=store, checkpoint=CheckpointStrategy.AFTER_EACH_STEP)
    system = cluster.system
    events = EventRecorder()
    system.events.subscribe(events)  # every event, NodeDown included
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    wf = (
        steps_of("s1", "s2")
        .then(task(cluster_app.block, name="block"))
        .then(steps_of("s4", "s5"))
        .named("kill-test")
    )
    handle = system.run(wf, {"log": str(log), "gate": str(gate)})

    first = events.wait_for(is_started("block", 1), timeout=15)
    victim = cluster.workers[first.node]  # type: ignore[attr-defined]
    (survivor,) = (w for name, w in cluster.workers.items() if name != victim.name)
    # The step is in flight on the victim: it logged its start and waits for the gate.
    wait_path(log)
    assert wait_until(lambda: ("block", victim.name) in log_lines(log), timeout=10), log.read_text()

    victim.process.kill()
    killed_at = time.monotonic()
    assert victim.wait(5) == -9
    gate.touch()  # the re-placed attempt may pass at once

    down = events.wait_for(
        lambda e: isinstance(e, ev.NodeDown) and e.node == victim.name, timeout=15
    )
    retrying = events.wait_for(
        lambda e: isinstance(e, ev.Retrying) and e.step == "block", timeout=15
    )
    restarted = events.wait_for(is_started("block", 2), timeout=15)
    down_at, restarted_at = events.arrival(down), events.arrival(restarted)
    replaced_after = restarted_at - killed_at
    print(
        f"\nkill -9 {victim.name} -> declared down after {down_at - killed_at:.2f}s, "
        f"block re-placed on {restarted.node} (Started) after {replaced_after:.2f}s"  # type: ignore[attr-defined]
    )
    assert handle.result(timeout=30) == ["s1", "s2", "s4", "s5"]

    assert down.reason == "down"  # type: ignore[attr-defined]
    assert isinstance(retrying.error, NodeDown)  # type: ignore[attr-defined]
    assert retrying.attempt == 2  # type: ignore[attr-defined]
    assert restarted.node == survivor.name  # type: ignore[attr-defined]
    assert replaced_after < 6.0
    assert system.members()[victim.name] == "down"

    steps = {s.step: s for s in handle.steps()}
    assert steps["block"].node == survivor.name
    assert steps["block"].attempts == 2
    assert all(s.state is NodeState.COMPLETED for s in steps.values())
    # Steps done before the kill ran once; only the step in flight ran twice.
    assert step_counts(log) == {"s1": 1, "s2": 1, "block": 2, "s4": 1, "s5": 1}
    assert [node for name, node in log_lines(log) if name == "block"] == [
        victim.name,
        survivor.name,
    ]
    assert {node for _, node in log_lines(log)} == set(WORKERS)
    # The checkpoint agrees: every step completed once, the lost one on its second attempt.
    checkpoint = store.load(handle.id)
    assert checkpoint.state == str(NodeState.COMPLETED)
    assert {k: (r.state, r.attempts) for k, r in checkpoint.steps.items()} == {
        "s1": ("Completed", 1),
        "s2": ("Completed", 1),
        "block": ("Completed", 2),
        "s4": ("Completed", 1),
        "s5": ("Completed", 1),
    }
    store.close()


@pytest.mark.timeout(90)
def test_sigterm_drains_the_running_step_and_new_steps_go_elsewhere(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = cluster_factory()
    system = cluster.system
    events = EventRecorder()
    system.events.subscribe(events)
    log, go = tmp_path / "steps.log", tmp_path / "go"
    drain_seen, release = tmp_path / "drain-seen", tmp_path / "release"
    wf = parallel(
        task(cluster_app.hold_for_drain, name="hold", on="worker-1"),
        task(cluster_app.block, name="go", on="worker-2").then(steps_of("q1", "q2", "q3", "q4")),
    ).then(task(cluster_app.step, name="final"))
    ctx = {
        "log": str(log),
        "gate": str(go),
        "drain_seen": str(drain_seen),
        "release": str(release),
    }
    handle = system.run(wf, ctx)
    events.wait_for(is_started("hold"), timeout=15)
    events.wait_for(is_started("go"), timeout=15)

    leaving = cluster.workers["worker-1"]
    leaving.signal(15)  # SIGTERM: drain, leave, exit 0
    wait_path(drain_seen)  # worker-1 drains, with "hold" still running on it
    assert leaving.process.poll() is None
    # Steps placed now (round-robin over the members still up) must not land on
    # the draining worker, or be re-placed when it refuses them.
    go.touch()
    events.wait_for(
        lambda e: (
            (isinstance(e, ev.Completed) and e.step == "q4")
            or (isinstance(e, ev.Failed) and e.final)
        ),
        timeout=20,
    )
    assert not handle.done(), f"run ended early: {handle.state}, {handle.steps()}"
    release.touch()  # "hold" may finish now: worker-1 completes its drain and leaves

    output = handle.result(timeout=30)
    assert output == ["q1", "q2", "q3", "q4", "final"]
    assert leaving.wait(20) == 0
    assert leaving.wait_line("node worker-1 left the cluster", 5) is not None
    nodes = {s.step: s.node for s in handle.steps()}
    assert nodes == {
        "hold": "worker-1",
        "go": "worker-2",
        "q1": "worker-2",
        "q2": "worker-2",
        "q3": "worker-2",
        "q4": "worker-2",
        "final": "worker-2",
    }
    # A refusal by the draining worker is a placement, not an attempt; but a step
    # sent to it just as it left is lost with it, and re-placed as a second attempt.
    attempts = {s.step: s.attempts for s in handle.steps()}
    assert all(s.state is NodeState.COMPLETED for s in handle.steps())
    assert attempts["hold"] == 1 and attempts["go"] == 1, attempts
    assert set(attempts.values()) <= {1, 2}, attempts
    # The drained step ran once, on worker-1, and finished after the drain began.
    assert drain_seen.read_text().split() == ["worker-1"]
    assert step_counts(log) == dict.fromkeys(nodes, 1)
    assert dict(log_lines(log)) == nodes
    assert wait_until(
        lambda: system.members().get("worker-1") == "left", timeout=10, interval=0.02
    ), system.members()
    assert not any(isinstance(e, ev.NodeDown) and e.reason == "down" for e in events.events)


@pytest.mark.timeout(90)
def test_sigterm_drain_hands_the_result_of_the_running_step_back(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    """The simplest drain: the only running step finishes after SIGTERM; its result arrives."""
    cluster = cluster_factory(workers=("worker-1",))
    release, drain_seen = tmp_path / "release", tmp_path / "drain-seen"
    events = EventRecorder()
    wf = task(cluster_app.hold_for_drain, name="hold")
    ctx = {"release": str(release), "drain_seen": str(drain_seen)}
    handle = cluster.system.run(wf, ctx, observers=[events])
    worker = cluster.workers["worker-1"]
    # Started comes from the worker's node actor: the step really runs there (the
    # coordinator's own step report says Running as soon as the request is sent).
    events.wait_for(is_started("hold"), timeout=15)
    worker.signal(15)
    wait_path(drain_seen)
    release.touch()
    assert handle.result(timeout=20) == "held on worker-1, saw drain: True"
    assert worker.wait(20) == 0


@pytest.mark.timeout(90)
def test_a_retry_that_comes_back_to_a_worker_leaks_no_actor(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    """A step failing on A, then B, then retried on A again: A must still exit on SIGTERM.

    Round-robin placement sends attempts 1, 2, 3 to worker-1, worker-2, worker-1.
    """
    cluster = cluster_factory()
    counter = tmp_path / "calls"
    wf = task(cluster_app.flaky, retry=RetryPolicy(max_attempts=3))
    handle = cluster.system.run(wf, {"counter": str(counter), "fail_times": 2})
    assert handle.result(timeout=30) == 3
    calls = counter.read_text().split()
    assert calls[0] == calls[2] != calls[1], calls  # the premise: back on the first node
    for worker in cluster.workers.values():
        worker.signal(15)
    for worker in cluster.workers.values():
        assert worker.exit_code(5) == 0, worker.output()


@pytest.mark.timeout(60)
def test_a_worker_holding_a_step_that_awaits_its_retry_exits_on_sigterm(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    """A failed step stays bound to its node actor on the worker until the retry comes.

    If the worker leaves meanwhile, shutting down must free that actor, or its
    (non-daemon) thread keeps the process alive after "left the cluster".
    """
    cluster = cluster_factory()
    events = EventRecorder()
    wf = task(cluster_app.flaky, retry=RetryPolicy(max_attempts=2, backoff=Fixed(60)))
    handle = cluster.system.run(
        wf, {"counter": str(tmp_path / "calls"), "fail_times": 1}, observers=[events]
    )
    started = events.wait_for(is_started("flaky"), timeout=15)
    events.wait_for(lambda e: isinstance(e, ev.Retrying) and e.step == "flaky", timeout=15)
    worker = cluster.workers[started.node]  # type: ignore[attr-defined]
    worker.signal(15)
    assert worker.exit_code(8) == 0, worker.output()
    handle.cancel()
    with pytest.raises(Canceled):
        handle.result(timeout=10)


@pytest.mark.timeout(60)
def test_a_burst_of_stop_signals_still_ends_in_a_clean_exit(
    cluster_factory: Callable[..., Cluster],
) -> None:
    """Regression: a second SIGTERM arriving inside the first one's handler deadlocked.

    The handler used to call ``Event.set()``, whose lock is not reentrant; it now
    takes no lock at all. Each worker gets SIGTERM/SIGINT back to back for a
    second (or until it has exited), then must exit 0.
    """
    cluster = cluster_factory()
    workers = list(cluster.workers.values())
    deadline = time.monotonic() + 1.0
    sent = 0
    while time.monotonic() < deadline and any(w.process.poll() is None for w in workers):
        for worker in workers:
            if worker.process.poll() is None:
                worker.signal(15 if sent % 2 == 0 else 2)
        sent += 1
    assert sent > 1
    for worker in workers:
        assert worker.exit_code(15) == 0, worker.output()


def wait_lines(log: Path, count: int, timeout: float = 15.0) -> list[tuple[str, str]]:
    """The side-effect log once it has at least ``count`` lines (bounded poll)."""
    assert wait_until(lambda: len(log_lines(log)) >= count, timeout), log_lines(log)
    return log_lines(log)


@pytest.mark.timeout(90)
def test_the_running_bound_holds_across_workers_and_a_kill_9_frees_no_extra_slot(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    """max_running_steps=2 over two workers: 2 of 6 branches run; a worker killed -9
    hands its step to the other worker (first in line, before the queued four), and
    still only 2 run; once the gate opens every branch completes."""
    cluster = cluster_factory(max_running_steps=2)
    events = EventRecorder()
    cluster.system.events.subscribe(events)
    log, gate = tmp_path / "steps.log", tmp_path / "gate"
    names = [f"b{i}" for i in range(6)]
    wf = parallel(*(task(cluster_app.block, name=name) for name in names))
    handle = cluster.system.run(wf, {"log": str(log), "gate": str(gate)})

    first_two = wait_lines(log, 2)
    assert sorted(name for name, _ in first_two) == ["b0", "b1"]  # queued in ready order
    victim_step, victim_node = first_two[0]
    victim = cluster.workers[victim_node]
    victim.process.kill()
    assert victim.wait(5) == -9
    events.wait_for(is_started(victim_step, 2), timeout=15)
    lines = wait_lines(log, 3)
    assert len(lines) == 3, lines  # the re-placed step took the freed slot; b2..b5 wait
    assert lines[2][0] == victim_step and lines[2][1] != victim_node

    gate.touch()
    outputs = handle.result(timeout=30)  # each branch returns the node it ran on
    assert len(outputs) == 6 and victim_node not in outputs, outputs
    assert step_counts(log) == {name: 2 if name == victim_step else 1 for name in names}
