"""CURVE at the runtime level: members with allowlisted keys work; a stranger never joins."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from runtime import task
from tests.cluster import cluster_app
from tests.cluster.cluster_kit import WORKERS, Cluster, log_lines, make_keys
from transport import generate_keys


@pytest.mark.timeout(90)
def test_a_worker_whose_key_is_not_allowlisted_cannot_join(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    keys = make_keys(tmp_path / "keys")
    cluster = cluster_factory(keys=keys)
    system = cluster.system
    assert system.members() == dict.fromkeys(("coordinator", *WORKERS), "up")

    # The stranger has its own key pair and knows the coordinator's public key,
    # but its public key is not in the coordinator's keys directory.
    stranger_keys = tmp_path / "stranger-keys"
    generate_keys(stranger_keys, "worker-3")
    shutil.copy(keys / "coordinator.key", stranger_keys / "coordinator.key")
    stranger = cluster.add_worker("worker-3", keys=stranger_keys, wait=False)

    # While it knocks, the cluster works, and nothing runs on the stranger.
    log = tmp_path / "steps.log"
    wf = task(cluster_app.step, name="a")
    for name in "bcdef":
        wf = wf.then(task(cluster_app.step, name=name))
    handle = system.run(wf, {"log": str(log)})
    assert handle.result(timeout=30) == list("abcdef")
    assert {s.node for s in handle.steps()} == set(WORKERS)
    assert {node for _, node in log_lines(log)} == set(WORKERS)

    # The seed's refusal reaches it (socket monitor): `actorflow node` exits 1, never up,
    # with an error naming the seed and the cause (not a timeout after --join-timeout).
    code = stranger.wait(25)
    assert code != 0, stranger.output()
    assert stranger.wait_line("node worker-3 up", timeout=0.1) is None
    error = stranger.wait_line("actorflow node: cannot join", timeout=5)
    assert error is not None, stranger.output()
    assert f"seed {cluster.seed}" in error
    assert "refused this node's CURVE key" in error
    assert "worker-3.key is not on the seed's allowlist" in error
    assert "worker-3" not in system.members()
