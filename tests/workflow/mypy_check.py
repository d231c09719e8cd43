"""Type checks by mypy itself, of the snippets in ``typing_cases`` (never run).

``check(cases, mistakes, cache_dir)``: ``cases`` must pass ``mypy --strict`` (its
``assert_type`` calls fail the check when an inferred type is wrong), and
``mistakes`` must fail on exactly its lines marked ``# error``, which proves the
check bites.
"""

from __future__ import annotations

import re
from pathlib import Path

from mypy import api

from tests.support import ROOT

HERE = Path(__file__).parent / "typing_cases"


def check(cases: str, mistakes: str, cache_dir: Path) -> None:
    """Run mypy on ``HERE/cases`` and ``HERE/mistakes`` and assert the rule above."""
    errors_file = HERE / mistakes
    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--strict",
            "--cache-dir",
            str(cache_dir),
            "--no-error-summary",
            "--hide-error-context",
            str(HERE / cases),
            str(errors_file),
        ]
    )
    assert stderr == ""
    errors = re.findall(r"^(\S+\.py):(\d+): error: (.*)$", stdout, flags=re.MULTILINE)
    assert [e for e in errors if not e[0].endswith(errors_file.name)] == [], stdout
    marked = [
        number
        for number, line in enumerate(errors_file.read_text().splitlines(), 1)
        if "# error" in line
    ]
    assert sorted({int(line) for _, line, _ in errors}) == marked, stdout
    assert status == 1
