"""Placement by capability: a step goes only to a member that registered its task.

A coordinator (this process, which registers nothing), two ``actorflow node``
workers serving ``tests.cluster.cluster_app``, and one worker, ``bare``,
started without any ``--app``: it is a live member that can run nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime import (
    ActorNotFound,
    ActorSystem,
    NodeState,
    PermanentError,
    Unplaceable,
    parallel,
    task,
)
from runtime.workflow import qualified_name
from tests.cluster import cluster_app
from tests.cluster.cluster_kit import WORKERS, Cluster, log_lines, start_cluster, wait_members
from tests.support import wait_until

BARE = "bare"


def stray(ctx: Any) -> str:
    """A task no worker registered (this test module is nobody's ``--app``)."""
    return "ran"


def scripted(ctx: Any) -> str:
    return "ran"


scripted.__module__ = "__main__"  # as if defined in the script that was run


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    started = start_cluster()
    try:
        started.add_worker(BARE, apps=())
        wait_members(started.system, {"coordinator", *WORKERS, BARE})
        yield started
    finally:
        lingered = started.stop()
        assert not lingered, f"workers did not exit on SIGTERM within 15 s: {lingered}"


@pytest.mark.timeout(60)
def test_a_worker_without_the_app_never_receives_its_steps(
    cluster: Cluster, tmp_path: Path
) -> None:
    log = tmp_path / "steps.log"
    names = [f"s{i}" for i in range(12)]
    merge = {"seen": lambda values: values, "nodes": lambda values: values}
    wf = parallel(*[task(cluster_app.step, name=name) for name in names], merge=merge)
    handle = cluster.system.run(wf, {"log": str(log)})
    handle.result(timeout=30)
    nodes = {step.step: step.node for step in handle.steps()}
    assert set(nodes.values()) == set(WORKERS), nodes  # both others got some
    assert sorted(step for step, _ in log_lines(log)) == sorted(names)
    assert {node for _, node in log_lines(log)} == set(WORKERS)
    assert cluster.system.members()[BARE] == "up"  # live, yet never chosen


@pytest.mark.timeout(30)
def test_a_task_no_member_registered_fails_at_once_naming_it_and_the_fix(
    cluster: Cluster,
) -> None:
    began = time.monotonic()
    handle = cluster.system.run(task(stray, name="stray"), {})
    with pytest.raises(Unplaceable) as raised:
        handle.result(timeout=15)
    elapsed = time.monotonic() - began
    message = str(raised.value)
    assert qualified_name(stray) in message
    assert "--app tests.cluster.test_capabilities" in message
    assert isinstance(raised.value, PermanentError)  # not retried by the default policy
    [step] = handle.steps()
    assert step.state is NodeState.FAILED
    assert step.attempts == 1, step  # failed once, never retried
    assert elapsed < 5.0, elapsed  # at once: no send, no timeout


@pytest.mark.timeout(30)
def test_a_pin_to_a_member_lacking_the_task_is_a_clear_error(
    cluster: Cluster, tmp_path: Path
) -> None:
    log = tmp_path / "steps.log"
    wf = task(cluster_app.step, name="first").then(task(cluster_app.step, name="pinned", on=BARE))
    handle = cluster.system.run(wf, {"log": str(log)})
    with pytest.raises(Unplaceable, match=r"pinned to node 'bare' \(on='bare'\)") as raised:
        handle.result(timeout=15)
    assert "--app tests.cluster.cluster_app" in str(raised.value)
    assert [step for step, _ in log_lines(log)] == ["first"]


@pytest.mark.timeout(30)
def test_a_main_task_is_told_to_move_into_an_importable_module(cluster: Cluster) -> None:
    handle = cluster.system.run(task(scripted, name="scripted"), {})
    with pytest.raises(Unplaceable, match="__main__") as raised:
        handle.result(timeout=15)
    assert "move it into an importable module" in str(raised.value)


@pytest.mark.timeout(30)
def test_spawn_on_a_member_lacking_the_class_is_refused_without_asking(
    cluster: Cluster,
) -> None:
    with pytest.raises(ActorNotFound, match="not registered on node 'bare'") as raised:
        cluster.system.spawn_on(BARE, cluster_app.Echo, name="echo-on-bare")
    assert "--app tests.cluster.cluster_app" in str(raised.value)
    assert cluster.system.spawn_on("worker-1", cluster_app.Echo, name="echo-ok").ask(
        "hi", timeout=10
    ) == ["worker-1", "echo", "hi"]


# -- in one process: re-advertising, and what has no name ------------------------------


def peer_only(ctx: Any) -> str:
    return "peer"


@pytest.mark.timeout(30)
def test_a_task_registered_after_joining_is_known_to_peers_when_register_returns(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, peer = coordinator_and_peer
    assert coordinator.cluster is not None
    name = qualified_name(peer_only)
    assert name not in coordinator.cluster.transport.capabilities("peer").get("tasks", ())
    handle = coordinator.run(task(peer_only), {})
    with pytest.raises(Unplaceable, match="no live member registered"):
        handle.result(timeout=10)

    peer.register_task(peer_only)  # re-advertised: returns once the coordinator answered
    assert name in coordinator.cluster.transport.capabilities("peer")["tasks"]
    handle = coordinator.run(task(peer_only), {})
    assert handle.result(timeout=10) == "peer"
    assert handle.steps()[0].node == "peer"


def coordinator_only(ctx: Any) -> str:
    return "coordinator"


@pytest.mark.timeout(30)
def test_the_coordinator_runs_what_only_it_registered(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, _ = coordinator_and_peer
    coordinator.register_task(coordinator_only)
    handle = coordinator.run(task(coordinator_only), {})
    assert handle.result(timeout=10) == "coordinator"
    assert handle.steps()[0].node == "coord"


@pytest.mark.timeout(30)
def test_a_lambda_runs_on_the_coordinator_and_cannot_be_pinned_elsewhere(
    coordinator_and_peer: tuple[ActorSystem, ActorSystem],
) -> None:
    coordinator, _ = coordinator_and_peer
    handle = coordinator.run(task(lambda ctx: "here", name="anonymous"), {})
    assert handle.result(timeout=10) == "here"
    assert handle.steps()[0].node == "coord"

    pinned = coordinator.run(task(lambda ctx: "there", name="pinned", on="peer"), {})
    with pytest.raises(PermanentError, match="only run on the coordinator"):
        pinned.result(timeout=10)


@pytest.mark.timeout(60)
def test_a_node_is_up_only_with_what_its_apps_register(cluster: Cluster) -> None:
    """``register(system)`` runs before the node joins: up means its actors are known.

    History: ``actorflow node`` joined first and ran ``register`` after, so a peer
    could see it up with no actor classes yet and refuse a ``spawn_on`` (seen in the
    cluster benchmark).
    """
    transport = cluster.system.cluster.transport if cluster.system.cluster else None
    assert transport is not None
    seen: list[frozenset[str]] = []

    def on_member(event: Any) -> None:
        if event.node == "late" and event.status == "up":
            seen.append(frozenset(transport.capabilities("late").get("actors", ())))

    transport.subscribe(on_member)
    cluster.add_worker("late")
    assert wait_until(lambda: bool(seen), 30.0), "late never came up"
    assert qualified_name(cluster_app.Echo) in seen[0]
