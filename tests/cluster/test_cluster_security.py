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

    # Its join times out (10 s in ActorSystem): `actorflow node` exits 1, never up.
    code = stranger.wait(25)
    assert code != 0, stranger.output()
    assert stranger.wait_line("node worker-3 up", timeout=0.1) is None
    assert "no seed answered" in stranger.output()
    assert "worker-3" not in system.members()
