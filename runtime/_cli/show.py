"""Show one run: its workflow, state, every recorded step with its state,
attempts, start time, duration and last error, and its outcome (the output of
a Completed run, the error of a Failed one)."""

from __future__ import annotations

import argparse

from actors import PersistenceError
from runtime._cli._common import add_db_option, format_duration, format_time, open_store
from runtime.store import Checkpoint, RunSummary, StepRecord, stored_output

HELP = "show one run's steps, states, attempts and timings"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_id", metavar="RUN_ID", help="a run id as `actorflow runs` lists it, or a unique prefix"
    )
    add_db_option(parser)


def run(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        checkpoint = store.load(_full_id(store.list(), args.run_id))
    print(f"run        {checkpoint.run_id}")
    print(f"workflow   {checkpoint.workflow} (fingerprint {checkpoint.fingerprint})")
    print(f"state      {checkpoint.state}")
    print(f"epoch      {checkpoint.epoch}")
    print(f"created    {format_time(checkpoint.created_at)}")
    print(f"updated    {format_time(checkpoint.updated_at)}")
    print()
    print(f"  {'STEP':<24} {'STATE':<10} {'ATTEMPTS':>8}  {'STARTED':<19} {'DURATION':>9}  ERROR")
    for step in checkpoint.steps.values():
        print(
            f"  {step.step[:24]:<24} {step.state:<10} {step.attempts:>8}  "
            f"{format_time(step.started_at):<19} {format_duration(_duration(step)):>9}  "
            f"{step.error or ''}"
        )
    if not checkpoint.steps:
        print("  (no step recorded yet)")
    print()
    print(f"outcome    {_outcome(checkpoint)}")
    return 0


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
