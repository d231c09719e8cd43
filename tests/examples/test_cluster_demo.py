"""The cluster demo end to end: CURVE cluster, a worker killed -9 mid-run, a graceful leave."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT


@pytest.mark.timeout(90)
def test_the_cluster_demo_survives_its_kill_and_drains() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.cluster_demo",
            "--rows",
            "3000",
            "--initial-delay",
            "0.05",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "declared down" in output, output
    assert "workers exited with [-9, 0]" in output, output
    assert ": Completed;" in output, output
