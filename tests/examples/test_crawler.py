"""The crawler example end to end: a graph, a map of async fetches with retries, a merge."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from examples.crawler import crawl
from runtime import NodeState
from tests.support import ROOT

pytestmark = pytest.mark.timeout(60)


def test_the_crawler_fetches_every_page_retrying_the_flaky_ones_once() -> None:
    out = io.StringIO()
    handle, outputs = crawl(200, 10, out=out, max_running=16)
    assert handle.state is NodeState.COMPLETED
    assert outputs["discover"] == 200 and outputs["fetch_all"] == 200
    assert outputs["summarize"] == (
        sum(50 + n % 17 for n in range(200)),
        sum(n % 5 for n in range(200)),
    )
    attempts = {s.step: s.attempts for s in handle.steps() if s.step.startswith("fetch[")}
    assert len(attempts) == 200
    assert {step for step, n in attempts.items() if n == 2} == {
        f"fetch[{n}]" for n in range(0, 200, 10)
    }
    assert "fetched 200 pages, 20 after a retry" in out.getvalue()


def test_the_crawler_runs_from_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.crawler", "--pages", "30", "--flaky-every", "7"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "fetched 30 pages, 5 after a retry" in result.stdout
