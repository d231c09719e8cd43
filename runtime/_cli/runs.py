"""List the runs recorded in the checkpoint database, newest first.

Columns: run id, workflow name, state, DONE/REC (steps completed / steps
recorded: a step is recorded once it has completed or failed, so one still
running or not reached yet is not counted; not the number of steps planned),
epoch (how many times the run was claimed), last update (UTC), owner
(host:pid:nonce while a process holds it).
"""

from __future__ import annotations

import argparse

from runtime._cli._common import add_db_option, format_time, open_store

HELP = "list recorded runs and their state"


def configure(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)


def run(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        summaries = sorted(store.list(), key=lambda s: s.updated_at, reverse=True)
    if not summaries:
        print(f"no runs recorded in {args.db}")
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
