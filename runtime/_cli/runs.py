"""List the runs recorded in the checkpoint database, newest first.

Columns: run id, workflow name, state, DONE/REC (steps completed / steps
recorded: a step is recorded once it has completed or failed, so one still
running or not reached yet is not counted; not the number of steps planned),
epoch (how many times the run was claimed), last update (UTC), owner
(host:pid:nonce while a process holds it). ``--json`` prints a JSON array
instead (keys: README).
"""

from __future__ import annotations

import argparse
from typing import Any

from runtime._cli._common import (
    add_db_option,
    add_json_option,
    db_name,
    format_time,
    iso_time,
    open_store,
    print_json,
)
from runtime.store import RunSummary

HELP = "list recorded runs and their state"


def configure(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    add_json_option(parser)


def run(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        summaries = sorted(store.list(), key=lambda s: s.updated_at, reverse=True)
    if args.json:
        print_json([run_json(s) for s in summaries])
        return 0
    if not summaries:
        print(f"no runs recorded in {db_name(args.db)}")
        return 0
    print(
        f"{'RUN':<14} {'WORKFLOW':<24} {'STATE':<10} {'DONE/REC':>8} {'EPOCH':>5}  "
        f"{'UPDATED':<19}  OWNER"
    )
    for s in summaries:
        steps = f"{s.steps_completed}/{s.steps_total}"
        print(
            f"{s.run_id:<14} {s.workflow[:24]:<24} {s.state or '-':<10} {steps:>8} "
            f"{s.epoch:>5}  {format_time(s.updated_at):<19}  {s.owner or '-'}"
        )
    return 0


def run_json(s: RunSummary) -> dict[str, Any]:
    """One run of ``actorflow runs --json``; the keys are documented in the README."""
    return {
        "run_id": s.run_id,
        "workflow": s.workflow,
        "state": s.state or None,
        "steps_completed": s.steps_completed,
        "steps_recorded": s.steps_total,
        "epoch": s.epoch,
        "owner": s.owner,
        "lease_until": iso_time(s.lease_until),
        "created_at": iso_time(s.created_at),
        "updated_at": iso_time(s.updated_at),
    }
