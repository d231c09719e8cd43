"""The runtime across real processes: membership, remote actors, remote steps, errors, pinning.

One coordinator (this process, plaintext loopback) and two ``actorflow node``
worker processes, shared by the tests of this module (none of them stops a
worker). The transport itself is covered by tests/transport; these tests
check what the runtime builds on it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pykka
import pytest

from runtime import (
    ActorNotFound,
    NodeDown,
    NodeState,
    RemoteError,
    RetryPolicy,
    TemporaryError,
    parallel,
    task,
)
from runtime import events as ev
from tests.cluster import cluster_app
from tests.cluster.cluster_kit import (
    WORKERS,
    Cluster,
    log_lines,
    started_nodes,
    step_counts,
    steps_of,
)
from tests.support import EventRecorder, wait_until
from transport import Address

MEMBERS = {"coordinator", *WORKERS}


class Inbox(pykka.ThreadingActor):
    """A local named actor that remote actors reach through an Address they were sent."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[Any] = []
        self.arrived = threading.Event()

    def on_receive(self, message: Any) -> Any:
        self.received.append(message)
        self.arrived.set()
        return None


@pytest.mark.timeout(60)
def test_all_three_see_each_other_up(shared_cluster: Cluster) -> None:
    system = shared_cluster.system
    assert system.members() == dict.fromkeys(MEMBERS, "up")
    everyone_up = dict.fromkeys(MEMBERS, "up")
    for name in WORKERS:
        probe = system.spawn_on(name, cluster_app.Echo, name="members-probe")
        assert probe.address == Address(name, "members-probe")

        def sees_everyone(ref: Any = probe) -> bool:
            return bool(ref.ask({"op": "members"}, timeout=5) == everyone_up)

        # A worker learns of the other worker by gossip, a moment after the coordinator.
        assert wait_until(sees_everyone, 10)


@pytest.mark.timeout(30)
def test_tell_and_ask_an_actor_spawned_remotely(shared_cluster: Cluster) -> None:
    system = shared_cluster.system
    spawned = system.spawn_on("worker-1", cluster_app.Echo, "hello", name="echo")
    ref = system.ref("worker-1/echo")
    assert ref == spawned
    assert ref.ask({"n": 1}, timeout=5) == ["worker-1", "hello", {"n": 1}]
    ref.tell("told-1")
    ref.tell(["told", 2])
    # One sender, one connection, one mailbox: the tells are in before the ask.
    assert ref.ask({"op": "told"}, timeout=5) == [{"n": 1}, "told-1", ["told", 2]]
    # By registered name, with no class object at hand.
    system.spawn_on("worker-2", "tests.cluster.cluster_app:Echo", "hi2", name="echo")
    assert system.ref("worker-2/echo").ask("x", timeout=5) == ["worker-2", "hi2", "x"]
    # An actor that raises answers the ask with a readable RemoteError.
    with pytest.raises(RemoteError) as failed:
        ref.ask({"op": "fail", "why": "testing"}, timeout=5)
    assert failed.value.type_name == "KeyError"
    assert "asked to fail: testing" in failed.value.message
    assert failed.value.node == "worker-1"
    # ... and lives on.
    assert ref.ask("still there?", timeout=5) == ["worker-1", "hello", "still there?"]


@pytest.mark.timeout(30)
def test_ask_of_an_unknown_path_is_actor_not_found_not_a_timeout(
    shared_cluster: Cluster,
) -> None:
    ref = shared_cluster.system.ref("worker-1/nobody-here")
    began = time.monotonic()
    with pytest.raises(ActorNotFound, match="nobody-here"):
        ref.ask("anyone?", timeout=10)
    assert time.monotonic() - began < 3.0
    with pytest.raises(NodeDown):
        shared_cluster.system.ref("no-such-node/echo").ask("x", timeout=10)


@pytest.mark.timeout(30)
def test_spawn_on_of_an_unregistered_class_is_refused(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    marker = tmp_path / "unregistered.log"
    began = time.monotonic()
    with pytest.raises(ActorNotFound, match="not registered"):
        shared_cluster.system.spawn_on(
            "worker-1", cluster_app.Unregistered, str(marker), name="ghost"
        )
    assert time.monotonic() - began < 3.0
    with pytest.raises(ActorNotFound):
        shared_cluster.system.ref("worker-1/ghost").ask("x", timeout=5)
    assert not marker.exists(), marker.read_text()


@pytest.mark.timeout(30)
def test_an_address_sent_in_a_message_is_a_usable_ref(shared_cluster: Cluster) -> None:
    system = shared_cluster.system
    inbox_ref = system.spawn(Inbox, name="inbox")
    inbox: Inbox = inbox_ref.proxy()._actor  # only to wait on its Event
    system.spawn_on("worker-1", cluster_app.Echo, "relay-1", name="relay-1")
    system.spawn_on("worker-2", cluster_app.Echo, "relay-2", name="relay-2")
    relay = system.ref("worker-1/relay-1")
    # worker-1 tells the coordinator's actor, through the Address it was sent.
    reply = relay.ask(
        {"op": "forward", "to": Address("coordinator", "inbox"), "body": "hi"}, timeout=5
    )
    assert reply == "forwarded"
    assert inbox.arrived.wait(5)
    assert inbox.received == [["from", "worker-1", "hi"]]
    # worker-1 tells worker-2's actor directly.
    relay.tell({"op": "forward", "to": Address("worker-2", "relay-2"), "body": "peer"})
    peer = system.ref("worker-2/relay-2")
    told: list[Any] = []

    def arrived() -> bool:  # polling the remote actor's state, bounded
        told[:] = peer.ask({"op": "told"}, timeout=5)
        return told != []

    wait_until(arrived, timeout=5, interval=0.02)
    assert told == [["from", "worker-1", "peer"]]
    # An Address comes back in an answer, and works as a ref.
    address = peer.ask({"op": "whoami"}, timeout=5)
    assert address == Address("worker-2", "relay-2")
    assert system.ref(address).ask("back", timeout=5) == ["worker-2", "relay-2", "back"]


@pytest.mark.timeout(60)
def test_a_workflow_runs_on_both_workers_with_ordered_events(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    system = shared_cluster.system
    events = EventRecorder()
    log = tmp_path / "steps.log"
    # Both branches extend the context's trail: merged explicitly, or the run would fail.
    trails = {
        "seen": lambda lists: list(dict.fromkeys(name for trail in lists for name in trail)),
        "nodes": lambda maps: {step: node for nodes in maps for step, node in nodes.items()},
    }
    wf = steps_of("a", "b", "c", "d").then(
        parallel(task(cluster_app.step, name="p1"), task(cluster_app.step, name="p2"), merge=trails)
    )
    handle = system.run(wf, {"log": str(log)}, observers=[events])
    assert handle.result(timeout=30) == (["a", "b", "c", "d", "p1"], ["a", "b", "c", "d", "p2"])
    assert handle.state is NodeState.COMPLETED

    steps = {s.step: s for s in handle.steps()}
    assert set(steps) == {"a", "b", "c", "d", "p1", "p2"}
    nodes = {key: s.node for key, s in steps.items()}
    assert set(nodes.values()) == set(WORKERS), nodes  # spread over both, none local
    assert all(s.state is NodeState.COMPLETED and s.attempts == 1 for s in steps.values())
    recorded = events.events
    assert started_nodes(recorded) == nodes
    assert {step: node for step, node in log_lines(log)} == nodes
    assert step_counts(log) == dict.fromkeys(nodes, 1)

    def index(kind: type[Any], key: str, pred: Any = lambda e: True) -> int:
        for i, e in enumerate(recorded):
            step = getattr(e, "step", None)
            if isinstance(e, kind) and step == key and pred(e):
                return i
        raise AssertionError(f"no {kind.__name__} for {key} in {recorded}")

    for key in nodes:
        running = index(ev.StateChanged, key, lambda e: e.new is NodeState.RUNNING)
        started = index(ev.Started, key)
        done = index(ev.StateChanged, key, lambda e: e.new is NodeState.COMPLETED)
        completed = index(ev.Completed, key)
        assert running < completed and started < completed and done < completed, key
    # a before b before c before d: the chain's events are in run order.
    chain = [index(ev.Completed, k) for k in "abcd"]
    assert chain == sorted(chain)
    assert index(ev.Completed, "d") < index(ev.Started, "p1")
    # The run's own Started comes first and its Completed last.
    assert isinstance(recorded[0], ev.Started) and recorded[0].step is None
    assert isinstance(recorded[-1], ev.Completed) and recorded[-1].step is None


@pytest.mark.timeout(60)
def test_a_remote_value_error_arrives_as_a_readable_remote_error(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    system = shared_cluster.system
    # A retry policy that retries TemporaryError only: a ValueError is not retried.
    wf = task(cluster_app.step, name="before").then(
        task(cluster_app.boom, retry=RetryPolicy(max_attempts=3))
    )
    handle = system.run(wf, {"value": 42, "log": str(tmp_path / "log")})
    with pytest.raises(RemoteError) as caught:
        handle.result(timeout=30)
    error = caught.value
    assert error.type_name == "ValueError"
    assert error.message == "bad input 42"
    assert error.node in WORKERS
    assert "def boom" in error.remote_traceback or "in boom" in error.remote_traceback
    assert "ValueError: bad input 42" in error.remote_traceback
    assert str(error) == f"ValueError: bad input 42 (on node {error.node})"
    assert handle.state is NodeState.FAILED
    boom = next(s for s in handle.steps() if s.step == "boom")
    assert boom.state is NodeState.FAILED
    assert boom.attempts == 1
    assert boom.node == error.node
    assert step_counts(tmp_path / "log") == {"before": 1, "boom": 1}


@pytest.mark.timeout(60)
def test_a_remote_temporary_error_is_retried_by_the_default_policy(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    system = shared_cluster.system
    counter = tmp_path / "calls"
    events = EventRecorder()
    policy = RetryPolicy(max_attempts=4)
    assert policy.retry_on == (TemporaryError,)
    wf = task(cluster_app.flaky, retry=policy)
    handle = system.run(wf, {"counter": str(counter), "fail_times": 2}, observers=[events])
    assert handle.result(timeout=30) == 3
    (flaky,) = handle.steps()
    assert flaky.state is NodeState.COMPLETED
    assert flaky.attempts == 3
    assert flaky.node in WORKERS
    calls = counter.read_text().splitlines()
    assert len(calls) == 3 and set(calls) <= set(WORKERS)
    recorded = events.events
    retrying = [e for e in recorded if isinstance(e, ev.Retrying)]
    assert [e.attempt for e in retrying] == [2, 3]
    assert all(isinstance(e.error, RemoteError) for e in retrying)
    assert all(e.error.type_name == "runtime.TemporaryError" for e in retrying)  # type: ignore[attr-defined]
    failed = [e for e in recorded if isinstance(e, ev.Failed) and e.step == "flaky"]
    assert [(e.attempts, e.final) for e in failed] == [(1, False), (2, False)]
    started = [e.attempt for e in recorded if isinstance(e, ev.Started) and e.step == "flaky"]
    assert started == [1, 2, 3]
    # Each attempt's transitions travel inside the worker's two messages; observers see
    # them in the order the node made them, and before what the coordinator says of it.
    story = []
    for e in recorded:
        if getattr(e, "step", None) != "flaky":
            continue
        if isinstance(e, ev.StateChanged):
            story.append(str(e.new))  # from Pending, or Failed when retried on the same node
        elif isinstance(e, ev.Started | ev.Retrying):
            story.append(f"{type(e).__name__} {e.attempt}")
        elif isinstance(e, ev.Failed | ev.Completed):
            story.append(f"{type(e).__name__} {e.attempts}")
    assert story == [
        *("Running", "Started 1", "Failed", "Failed 1", "Retrying 2"),
        *("Running", "Started 2", "Failed", "Failed 2", "Retrying 3"),
        *("Running", "Started 3", "Completed", "Completed 3"),
    ]


@pytest.mark.timeout(60)
def test_a_remote_temporary_error_exhausts_the_retries(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    wf = task(cluster_app.flaky, retry=RetryPolicy(max_attempts=2))
    handle = shared_cluster.system.run(wf, {"counter": str(tmp_path / "c"), "fail_times": 5})
    with pytest.raises(RemoteError) as caught:
        handle.result(timeout=30)
    assert caught.value.type_name == "runtime.TemporaryError"
    assert handle.steps()[0].attempts == 2
    assert len((tmp_path / "c").read_text().splitlines()) == 2


@pytest.mark.timeout(60)
def test_pinned_steps_run_on_their_node(shared_cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "log"
    wf = (
        steps_of("w2-a", "w2-b", "w2-c", on="worker-2")
        .then(task(cluster_app.step, name="w1", on="worker-1"))
        .then(task(cluster_app.step, name="here", on="coordinator"))
    )
    handle = shared_cluster.system.run(wf, {"log": str(log)})
    assert handle.result(timeout=30) == ["w2-a", "w2-b", "w2-c", "w1", "here"]
    nodes = {s.step: s.node for s in handle.steps()}
    expected = {
        "w2-a": "worker-2",
        "w2-b": "worker-2",
        "w2-c": "worker-2",
        "w1": "worker-1",
        "here": "coordinator",
    }
    assert nodes == expected
    assert dict(log_lines(log)) == expected  # where the code really ran


@pytest.mark.timeout(30)
def test_a_step_pinned_to_an_unknown_node_fails_with_node_down(
    shared_cluster: Cluster, tmp_path: Path
) -> None:
    wf = task(cluster_app.step, name="first").then(
        task(cluster_app.step, name="lost", on="no-such-node")
    )
    began = time.monotonic()
    handle = shared_cluster.system.run(wf, {"log": str(tmp_path / "log")})
    with pytest.raises(NodeDown, match="no-such-node"):
        handle.result(timeout=15)
    assert time.monotonic() - began < 5.0
    lost = next(s for s in handle.steps() if s.step == "lost")
    assert lost.state is NodeState.FAILED
    assert step_counts(tmp_path / "log") == {"first": 1}
