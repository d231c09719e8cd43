"""Reading ``SQLiteStore`` rows back: every blob checked (length, CRC-32) before use."""

from __future__ import annotations

import builtins
import json
from typing import Any, Final

from actors import PersistenceError
from runtime.store._protocol import Checkpoint, Outcome, RunSummary, StepRecord, unsaved_run
from runtime.store._sqlite_schema import crc

__all__ = ["LIST_QUERY", "LOAD_RUN", "LOAD_STEPS", "checkpoint_from_rows", "summaries_from_rows"]

LOAD_RUN: Final = (
    "SELECT workflow, fingerprint, state, context, context_len, context_crc, epoch,"
    " created_at, updated_at, settings, output, output_crc, output_step, error, unrecorded"
    " FROM runs WHERE run_id = ?"
)
LOAD_STEPS: Final = (
    "SELECT step, state, attempts, output, output_crc, error, started_at, finished_at, node"
    " FROM steps WHERE run_id = ? ORDER BY seq"
)
# Each step's last record: with one MAX() aggregate, SQLite takes the bare columns
# (state) from the row holding the maximum.
LIST_QUERY: Final = """
    SELECT r.run_id, r.workflow, r.state, r.epoch, r.owner, r.lease_until,
           r.created_at, r.updated_at, r.context_len IS NOT NULL,
           COUNT(s.step), COALESCE(SUM(lower(s.state) = 'completed'), 0)
    FROM runs AS r LEFT JOIN (
        SELECT run_id, step, state, MAX(seq) FROM steps GROUP BY run_id, step
    ) AS s ON s.run_id = r.run_id
    GROUP BY r.run_id
    ORDER BY r.created_at, r.run_id
"""


def checkpoint_from_rows(
    run_id: str, run_row: tuple[Any, ...], step_rows: builtins.list[tuple[Any, ...]]
) -> Checkpoint:
    """Build a Checkpoint, raising PersistenceError for any blob that fails its check."""
    (workflow, fingerprint, state, context, context_len, context_crc, epoch) = run_row[:7]
    created_at, updated_at, settings_json = run_row[7:10]
    if context_len is None:
        raise unsaved_run(run_id)
    if not isinstance(context, bytes):
        raise _corrupt(run_id, f"context is {type(context).__name__}, not a blob")
    if len(context) != context_len:
        raise _corrupt(run_id, f"context is {len(context)} bytes, {context_len} were written")
    if crc(context) != context_crc:
        raise _corrupt(run_id, "context fails its CRC-32 check")
    try:
        settings = json.loads(settings_json)
    except (TypeError, ValueError) as exc:
        raise _corrupt(run_id, f"settings are not valid JSON: {exc}") from exc
    if not isinstance(settings, dict) or not all(isinstance(v, str) for v in settings.values()):
        raise _corrupt(run_id, "settings are not a JSON object of strings")
    steps: dict[str, StepRecord] = {}
    checksums: dict[str, Any] = {}
    for key, step_state, attempts, output, output_crc, error, started, finished, node in step_rows:
        steps[key] = StepRecord(key, step_state, attempts, output, error, started, finished, node)
        checksums[key] = output_crc
    for key, record in steps.items():  # only each step's last record is handed on
        output = record.output
        if output is not None and (not isinstance(output, bytes) or crc(output) != checksums[key]):
            raise _corrupt(run_id, f"output of step {key!r} fails its CRC-32 check")
    return Checkpoint(
        run_id=run_id,
        workflow=workflow,
        fingerprint=fingerprint,
        state=state,
        context=context,
        steps=steps,
        epoch=epoch,
        created_at=created_at,
        updated_at=updated_at,
        settings=settings,
        outcome=_outcome(run_id, *run_row[10:]),
    )


def _outcome(
    run_id: str, output: Any, output_crc: Any, output_step: Any, error: Any, unrecorded: Any
) -> Outcome | None:
    if output is None and output_step is None and error is None and unrecorded is None:
        return None
    if output is not None and (not isinstance(output, bytes) or crc(output) != output_crc):
        raise _corrupt(run_id, "the run's output fails its CRC-32 check")
    return Outcome(output=output, output_step=output_step, error=error, unrecorded=unrecorded)


def summaries_from_rows(rows: builtins.list[tuple[Any, ...]]) -> builtins.list[RunSummary]:
    return [
        RunSummary(
            run_id=run_id,
            workflow=workflow or "",
            state=state or "",
            epoch=epoch,
            owner=owner,
            lease_until=lease_until,
            created_at=created_at,
            updated_at=updated_at,
            steps_total=steps_total,
            steps_completed=steps_completed,
            has_checkpoint=bool(has_checkpoint),
        )
        for (
            run_id,
            workflow,
            state,
            epoch,
            owner,
            lease_until,
            created_at,
            updated_at,
            has_checkpoint,
            steps_total,
            steps_completed,
        ) in rows
    ]


def _corrupt(run_id: str, reason: str) -> PersistenceError:
    return PersistenceError(f"run {run_id}: stored checkpoint is corrupt: {reason}")
