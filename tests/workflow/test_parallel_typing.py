"""``parallel``'s types, checked by mypy itself: the snippets in ``typing_cases``.

``parallel_types.py`` must pass ``mypy --strict`` (its ``assert_type`` calls
fail the check when an inferred type is wrong); ``parallel_errors.py`` must
fail on exactly the lines marked ``# error``, which proves the check bites.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflow.mypy_check import check


@pytest.mark.timeout(120)
def test_mypy_infers_the_outputs_of_parallel_and_reports_the_mistakes(tmp_path: Path) -> None:
    check("parallel_types.py", "parallel_errors.py", tmp_path / "mypy_cache")
