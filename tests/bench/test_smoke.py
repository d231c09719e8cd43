"""`python -m bench --smoke` runs every row family and writes a complete JSON document.

Benchmarks are not timed assertions: this checks that every row still runs and
reports numbers, never what the numbers are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.support import ROOT

FAMILIES = {"local", "steps", "memory", "checkpoint", "remote", "cluster", "submit"}
MACHINE_FACTS = {"cores", "python", "pykka", "msgpack", "pyzmq", "libzmq", "platform", "date"}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Any]:
    path = tmp_path_factory.mktemp("bench") / "smoke.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    document = json.loads(path.read_text()) if path.exists() else None
    return completed, document


@pytest.mark.timeout(120)
def test_smoke_run_exits_zero_and_prints_one_table(smoke: Any) -> None:
    completed, document = smoke
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert document is not None
    assert completed.stdout.count("actorflow benchmarks:") == 1
    for row in document["rows"]:
        assert row["name"][:40] in completed.stdout


@pytest.mark.timeout(120)
def test_smoke_json_has_every_family_and_the_machine_facts(smoke: Any) -> None:
    _, document = smoke
    assert {row["family"] for row in document["rows"]} >= FAMILIES
    assert set(document["machine"]) >= MACHINE_FACTS
    assert document["config"] == {"smoke": True, "repeats": 1}


@pytest.mark.timeout(120)
def test_every_measured_row_has_numeric_value_baselines_and_ratio(smoke: Any) -> None:
    _, document = smoke
    for row in document["rows"]:
        if row["status"] == "N/A":  # a feature not merged yet: it must say what is missing
            assert row["value"] is None and row["note"], row
            continue
        assert row["status"] in {"PASS", "MISS", "INFO"}, row
        for series in [row["value"], *row["baselines"]]:
            assert all(_is_number(series[k]) for k in ("median", "min", "max")), row
            assert series["samples"] and all(_is_number(s) for s in series["samples"]), row
        assert row["baselines"], row
        assert _is_number(row["ratio"]), row
        if row["target"] is not None:
            assert _is_number(row["target"]["limit"]), row
