"""``actorflow graph``: the ETL example's diagram printed by the real command, in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, actorflow

pytestmark = pytest.mark.timeout(60)

ETL = ("graph", "--app", "examples.etl", "etl")


def test_graph_prints_the_etl_workflow_as_mermaid_by_default() -> None:
    result = actorflow(*ETL)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    for label in ("extract", "transform", "aggregate", "validate", "log", "load"):
        assert f'("{label}")' in result.stdout, label
    assert "retry: 3 attempts, exponential 1 s x2 up to 30 s" in result.stdout
    assert '-.->|"no: skip"|' in result.stdout


def test_graph_prints_dot() -> None:
    result = actorflow(*ETL, "--format", "dot")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('digraph "etl" {')
    assert 'label="load"' in result.stdout


@pytest.mark.skipif(
    shutil.which("dot") is None,
    reason="Graphviz's `dot` is not installed (apt-get install graphviz)",
)
def test_graph_renders_svg_through_graphviz() -> None:
    result = actorflow(*ETL, "--format", "svg")
    assert result.returncode == 0, result.stderr
    assert "<svg" in result.stdout and "load" in result.stdout


def test_svg_without_graphviz_exits_1_saying_what_to_install(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runtime._cli", *ETL, "--format", "svg"],
        cwd=ROOT,
        env={**os.environ, "PATH": str(tmp_path)},  # a PATH on which no `dot` is found
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 1
    assert "graphviz" in result.stderr and "--format mermaid" in result.stderr
    assert result.stdout == ""


def test_an_unknown_name_exits_1_naming_the_workflows_available() -> None:
    result = actorflow("graph", "--app", "examples.etl", "nope")
    assert result.returncode == 1
    assert "'nope'" in result.stderr and "available: etl" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("graph", "etl"),  # no --app
        ("graph", "--app", "examples.etl"),  # no name
        (*ETL, "--format", "png"),
    ],
)
def test_bad_usage_exits_2(args: tuple[str, ...]) -> None:
    result = actorflow(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "usage: actorflow graph" in result.stderr
