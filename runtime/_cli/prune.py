"""Forget finished runs older than a cut-off (their checkpoints and step records).

    actorflow prune --older-than 7d                  # Completed and Canceled runs
    actorflow prune --older-than 30d --state Failed  # also Failed ones (no resume after)
    actorflow prune --older-than 12h --dry-run       # only list what would go

A run someone holds (a live lease, or claimed while pruning) is never deleted.
Durations: seconds, or a number with s, m, h or d.
"""

from __future__ import annotations

import argparse
import time

from runtime._cli._common import add_db_option, db_name, open_store
from runtime.store import FINISHED_STATES, new_owner_id, parse_duration, prune_runs

HELP = "forget finished runs older than a cut-off"


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def configure(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    parser.add_argument(
        "--older-than",
        type=_duration,
        required=True,
        metavar="DURATION",
        help="last updated longer ago than this (e.g. 7d, 12h, 90s)",
    )
    parser.add_argument(
        "--state",
        action="append",
        choices=["Completed", "Canceled", "Failed"],
        help=f"run state to prune (repeatable; default: {', '.join(FINISHED_STATES)})",
    )
    parser.add_argument("--dry-run", action="store_true", help="list, delete nothing")


def run(args: argparse.Namespace) -> int:
    with open_store(args.db) as store:
        pruned = prune_runs(
            store,
            older_than=args.older_than,
            now=time.time(),
            owner=new_owner_id(),
            states=args.state or FINISHED_STATES,
            dry_run=args.dry_run,
        )
    verb = "would prune" if args.dry_run else "pruned"
    print(f"{verb} {len(pruned)} run(s) from {db_name(args.db)}")
    for run_id in pruned:
        print(f"  {run_id}")
    return 0
