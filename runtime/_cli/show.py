"""Show one run: its workflow, state, every recorded step with its state,
attempts, the node its last attempt ran on, start time, duration and last
error, and its outcome (the output of a Completed run, the error of a Failed
one). ``--json`` prints one JSON object instead (keys: README)."""

from __future__ import annotations

import argparse
from typing import Any

from actors import PersistenceError
from runtime._cli._common import (
    add_db_option,
    add_json_option,
    format_duration,
    format_time,
    is_json_value,
    iso_time,
    open_store,
    print_json,
)
from runtime.store import Checkpoint, RunSummary, StepRecord, stored_output

HELP = "show one run's steps, states, attempts and timings"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_id", metavar="RUN_ID", help="a run id as `actorflow runs` lists it, or a unique prefix"
    )
    add_db_option(parser)
    add_json_option(parser)


def run(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        checkpoint = store.load(_full_id(store.list(), args.run_id))
    if args.json:
        print_json(checkpoint_json(checkpoint))
        return 0
    print(f"run        {checkpoint.run_id}")
    print(f"workflow   {checkpoint.workflow} (fingerprint {checkpoint.fingerprint})")
    print(f"state      {checkpoint.state}")
    print(f"epoch      {checkpoint.epoch}")
    print(f"created    {format_time(checkpoint.created_at)}")
    print(f"updated    {format_time(checkpoint.updated_at)}")
    print()
    print(
        f"  {'STEP':<24} {'STATE':<10} {'ATTEMPTS':>8}  {'NODE':<16} "
        f"{'STARTED':<19} {'DURATION':>9}  ERROR"
    )
    for step in checkpoint.steps.values():
        print(
            f"  {step.step[:24]:<24} {step.state:<10} {step.attempts:>8}  "
            f"{(step.node or '-')[:16]:<16} "
            f"{format_time(step.started_at):<19} {format_duration(_duration(step)):>9}  "
            f"{step.error or ''}"
        )
    if not checkpoint.steps:
        print("  (no step recorded yet)")
    print()
    print(f"outcome    {_outcome(checkpoint)}")
    return 0


def checkpoint_json(checkpoint: Checkpoint) -> dict[str, Any]:
    """``actorflow show --json``: the run, its steps and its outcome (keys: README)."""
    return {
        "run_id": checkpoint.run_id,
        "workflow": checkpoint.workflow,
        "fingerprint": checkpoint.fingerprint,
        "state": checkpoint.state or None,
        "epoch": checkpoint.epoch,
        "created_at": iso_time(checkpoint.created_at),
        "updated_at": iso_time(checkpoint.updated_at),
        "steps": [_step_json(step) for step in checkpoint.steps.values()],
        "outcome": _outcome_json(checkpoint),
    }


def _step_json(step: StepRecord) -> dict[str, Any]:
    duration = _duration(step)
    return {
        "step": step.step,
        "state": step.state,
        "attempts": step.attempts,
        "node": step.node,
        "started_at": iso_time(step.started_at),
        "finished_at": iso_time(step.finished_at),
        "duration_s": None if duration is None else round(duration, 6),
        "error": step.error,
    }


def _outcome_json(checkpoint: Checkpoint) -> dict[str, Any]:
    """The output (or its repr), the run's error, and why there is no output."""
    recorded_error = checkpoint.outcome.error if checkpoint.outcome is not None else None
    try:
        output = stored_output(checkpoint)
    except PersistenceError as exc:
        return {"output": None, "output_repr": None, "error": recorded_error, "no_output": str(exc)}
    encodable = is_json_value(output)
    return {
        "output": output if encodable else None,
        "output_repr": None if encodable else repr(output),
        "error": recorded_error,
        "no_output": None,
    }


def _duration(step: StepRecord) -> float | None:
    if step.started_at is None or step.finished_at is None:
        return None
    return step.finished_at - step.started_at


def _full_id(runs: list[RunSummary], given: str) -> str:
    """``given`` itself if it is a run id, else the one run id it is a prefix of."""
    ids = [run.run_id for run in runs]
    if given in ids:
        return given
    matches = [run_id for run_id in ids if run_id.startswith(given)]
    if len(matches) > 1:
        raise PersistenceError(
            f"run id prefix {given!r} matches {len(matches)} runs: {matches[:5]}"
        )
    return matches[0] if matches else given  # unknown: load names it


def _outcome(checkpoint: Checkpoint) -> str:
    """The recorded output (shortened) or why there is none; never raises."""
    try:
        text = repr(stored_output(checkpoint))
    except PersistenceError as exc:
        return str(exc)
    return text if len(text) <= _OUTPUT_CHARS else f"{text[:_OUTPUT_CHARS]}... ({len(text)} chars)"


_OUTPUT_CHARS = 200
