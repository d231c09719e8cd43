"""A real SQLite file with a run that failed at its second step, for the CLI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import ActorSystem, CheckpointStrategy, PermanentError, SQLiteStore
from tests.cli.cli_app import workflows


def record_failed_run(folder: Path, marker_name: str = "broken") -> tuple[Path, str, Path]:
    """Run ``cli-demo`` until its second step fails (the marker file is present).

    Returns the database, the run id and the marker (delete it to fix the cause).
    """
    db, marker = folder / "state.db", folder / marker_name
    marker.touch()
    ctx = {"log": str(folder / "side-effects.log"), "marker": str(marker)}
    checkpoint = CheckpointStrategy.AFTER_EACH_STEP
    with SQLiteStore(db) as store, ActorSystem("cli-test", store=store, checkpoint=checkpoint) as s:
        handle = s.run(workflows()[0], ctx)
        with pytest.raises(PermanentError):
            handle.result(10)
    return db, handle.id, marker


@pytest.fixture
def failed_run(tmp_path: Path) -> tuple[Path, str, Path]:
    return record_failed_run(tmp_path)
