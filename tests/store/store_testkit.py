"""Builders shared by the store tests and the subprocess worker (not a test module)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from runtime.store import (
    Checkpoint,
    CheckpointStore,
    Outcome,
    RunHeader,
    StepRecord,
    decode_value,
    encode_value,
)


def step(
    key: str,
    *,
    state: str = "completed",
    output: Any = None,
    attempts: int = 1,
    node: str | None = None,
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
        node=node,
    )


def header(
    run_id: str,
    *,
    context: Any = None,
    settings: Mapping[str, str] | None = None,
    fingerprint: str = "fp-1",
    created_at: float = 100.0,
) -> RunHeader:
    """The header of a run of workflow ``etl`` with ``context`` encoded."""
    return RunHeader(
        run_id=run_id,
        workflow="etl",
        fingerprint=fingerprint,
        context=encode_value(context if context is not None else {}, what="test context"),
        created_at=created_at,
        settings=dict(settings or {}),
    )


def started(
    store: CheckpointStore,
    run_id: str,
    *,
    owner: str = "a",
    context: Any = None,
    settings: Mapping[str, str] | None = None,
    created_at: float = 100.0,
) -> int:
    """Claim ``run_id`` and write its header (state ``running``); return the epoch."""
    epoch = store.claim(run_id, owner=owner, lease=30)
    store.start(
        header(run_id, context=context, settings=settings, created_at=created_at),
        epoch=epoch,
        state="running",
        updated_at=created_at,
    )
    return epoch


def append(
    store: CheckpointStore,
    run_id: str,
    epoch: int,
    *records: StepRecord,
    state: str = "running",
    updated_at: float = 101.0,
    outcome: Outcome | None = None,
) -> None:
    store.append(
        run_id,
        epoch=epoch,
        records=list(records),
        state=state,
        updated_at=updated_at,
        outcome=outcome,
    )


def checkpoint(
    run_id: str,
    epoch: int,
    *,
    context: Any = None,
    steps: Sequence[StepRecord] = (),
    state: str = "running",
    settings: Mapping[str, str] | None = None,
    outcome: Outcome | None = None,
    created_at: float = 100.0,
    updated_at: float = 101.0,
) -> Checkpoint:
    """What ``load`` returns for a run of workflow ``etl`` (``steps`` in recorded order)."""
    return Checkpoint(
        run_id=run_id,
        workflow="etl",
        fingerprint="fp-1",
        state=state,
        context=encode_value(context if context is not None else {}, what="test context"),
        steps={record.step: record for record in steps},
        epoch=epoch,
        created_at=created_at,
        updated_at=updated_at,
        settings=dict(settings or {}),
        outcome=outcome,
    )


def context_of(saved: Checkpoint) -> Any:
    return decode_value(saved.context, what=f"run {saved.run_id} context")
