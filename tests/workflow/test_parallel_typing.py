"""``parallel``'s types, checked by mypy itself: the snippets in ``typing_cases``.

``parallel_types.py`` must pass ``mypy --strict`` (its ``assert_type`` calls
fail the check when an inferred type is wrong); ``parallel_errors.py`` must
fail on exactly the lines marked ``# error``, which proves the check bites.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mypy import api

from tests.support import ROOT

CASES = Path(__file__).parent / "typing_cases"


@pytest.mark.timeout(120)
def test_mypy_infers_the_outputs_of_parallel_and_reports_the_mistakes(tmp_path: Path) -> None:
    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--strict",
            "--cache-dir",
            str(tmp_path / "mypy_cache"),
            "--no-error-summary",
            "--hide-error-context",
            str(CASES / "parallel_types.py"),
            str(CASES / "parallel_errors.py"),
        ]
    )
    assert stderr == ""
    errors = re.findall(r"^(\S+\.py):(\d+): error: (.*)$", stdout, flags=re.MULTILINE)
    assert [e for e in errors if not e[0].endswith("parallel_errors.py")] == [], stdout
    marked = [
        number
        for number, line in enumerate((CASES / "parallel_errors.py").read_text().splitlines(), 1)
        if "# error" in line
    ]
    assert sorted({int(line) for _, line, _ in errors}) == marked, stdout
    assert status == 1
