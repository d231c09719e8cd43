"""Builders shared by the store tests and the subprocess worker (not a test module)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.store import Checkpoint, StepRecord, decode_value, encode_value


def step(
    key: str, *, state: str = "completed", output: Any = None, attempts: int = 1
) -> StepRecord:
    """A step record whose output is ``output`` encoded (None stays None)."""
    return StepRecord(
        step=key,
        state=state,
        attempts=attempts,
        output=None if output is None else encode_value(output, what=f"step {key} output"),
        error=None if state != "failed" else "boom",
        started_at=10.0,
        finished_at=None if state == "running" else 11.0,
    )


def checkpoint(
    run_id: str,
    epoch: int,
    *,
    context: Any = None,
    steps: Mapping[str, StepRecord] | None = None,
    state: str = "running",
    meta: Mapping[str, str] | None = None,
    created_at: float = 100.0,
    updated_at: float = 101.0,
) -> Checkpoint:
    """A checkpoint of workflow ``etl`` with ``context`` encoded."""
    return Checkpoint(
        run_id=run_id,
        workflow="etl",
        fingerprint="fp-1",
        state=state,
        context=encode_value(context if context is not None else {}, what="test context"),
        steps=dict(steps or {}),
        epoch=epoch,
        created_at=created_at,
        updated_at=updated_at,
        meta=dict(meta or {}),
    )


def context_of(saved: Checkpoint) -> Any:
    return decode_value(saved.context, what=f"run {saved.run_id} context")
