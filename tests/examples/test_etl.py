"""The ETL example end to end, with short backoffs so it runs fast."""

from __future__ import annotations

import io
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from examples.etl import run_etl
from runtime import MemoryStore, NodeState, TemporaryError
from tests.support import ROOT

pytestmark = pytest.mark.timeout(60)


def test_etl_retries_the_transient_load_failure_and_loads_every_good_row(tmp_path: Path) -> None:
    out = io.StringIO()
    handle, ctx = run_etl(
        tmp_path, 3000, initial_delay=0.01, fail_times=1, out=out, store=MemoryStore()
    )
    assert handle.state is NodeState.COMPLETED
    steps = {s.step: s for s in handle.steps()}
    assert list(steps) == ["extract", "transform", "aggregate", "validate", "log", "load"]
    assert steps["load"].attempts == 2
    assert not steps["aggregate"].skipped
    assert ctx.data_size + ctx.rejected == 3000
    assert ctx.rejected == 4  # ids 0, 997, 1994, 2991 carry a malformed amount
    with sqlite3.connect(tmp_path / "warehouse.db") as db:
        assert db.execute("SELECT COUNT(*) FROM sales").fetchone() == (ctx.data_size,)
    assert ctx.validated and ctx.loaded == ctx.data_size
    lines = out.getvalue().splitlines()
    assert any(x.startswith("[5/6] 0 running, 1 retry") for x in lines)  # load's retry is due
    assert any(re.fullmatch(r"\[6/6\] done in \d+\.\ds, 1 retry", line) for line in lines), lines


def test_etl_skips_the_aggregate_step_for_small_inputs(tmp_path: Path) -> None:
    handle, ctx = run_etl(tmp_path, 500, initial_delay=0.01, out=io.StringIO(), store=MemoryStore())
    steps = {s.step: s for s in handle.steps()}
    assert steps["aggregate"].skipped
    assert ctx.totals == {}
    assert ctx.loaded == 500 - 1


def test_etl_fails_when_the_failure_outlasts_the_retry_policy(tmp_path: Path) -> None:
    with pytest.raises(TemporaryError, match="attempt 3"):
        run_etl(
            tmp_path,
            100,
            initial_delay=0.01,
            fail_times=3,
            out=io.StringIO(),
            store=MemoryStore(),
        )


def test_etl_script_prints_progress_and_a_summary(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "examples/etl.py",
            "--rows",
            "1500",
            "--initial-delay",
            "0.01",
            "--workdir",
            str(tmp_path),
            "--db",
            str(tmp_path / "state.db"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "step       state      attempts   duration" in result.stdout
    assert "[0/6] 0 running" in result.stdout  # the progress line, printed whole in a pipe
    assert "Completed; loaded 1498 rows" in result.stdout
    assert (tmp_path / "state.db").is_file()  # checkpointed where asked, not in the repo


def test_etl_script_rejects_a_bad_argument(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "examples/etl.py", "--rows", "-5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 2
    assert "--rows must be >= 0, got -5" in result.stderr
