"""A graph across real worker processes: its parts are steps placed like any other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime import GraphBuilder, NodeState, graph, task
from tests.cluster import cluster_app
from tests.cluster.cluster_kit import WORKERS, Cluster, log_lines, step_counts


@pytest.mark.timeout(60)
def test_a_graph_runs_its_parts_on_the_workers(shared_cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "steps.log"
    g: GraphBuilder[dict[str, Any]] = graph("crawl")
    a = g.add(task(cluster_app.step, name="a"))
    b = g.add(task(cluster_app.step, name="b"))
    g.add(task(cluster_app.step, name="c"), after=[a, b])
    g.add(task(cluster_app.step, name="d"), after=[a])
    handle = shared_cluster.system.run(g.build(), {"log": str(log)})
    # `step` appends to ctx["seen"]: c starts from a's then b's changes (b, added later, wins).
    assert handle.result(timeout=30) == {
        "a": ["a"],
        "b": ["b"],
        "c": ["b", "c"],
        "d": ["a", "d"],
    }
    steps = {s.step: s for s in handle.steps()}
    assert all(s.state is NodeState.COMPLETED and s.node in WORKERS for s in steps.values())
    assert dict(log_lines(log)) == {key: s.node for key, s in steps.items()}
    assert step_counts(log) == dict.fromkeys("abcd", 1)
