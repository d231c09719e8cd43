"""Pause, unpause or cancel a running run, wherever in the cluster it is coordinated.

    actorflow control RUN_ID pause --join coordinator@tcp://127.0.0.1:7100 --keys keys --name admin

Paused: no new step attempt starts (running ones finish); unpause starts the
held-back ones; cancel ends the run Canceled. The coordinating system must be
a cluster member (``listen=``); this tool joins briefly (see ``status``).
"""

from __future__ import annotations

import argparse

from runtime._cli._member import add_member_options, ask_every_member, temporary_member

HELP = "pause, unpause or cancel a running run"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument("action", choices=["pause", "unpause", "cancel"])
    add_member_options(parser)


def run(args: argparse.Namespace) -> int:
    done = send_control(args, args.run_id, args.action)
    if not done:
        print(f"run {args.run_id}: no node coordinates it (finished, or not in this cluster)")
        return 1
    print(f"run {args.run_id}: {args.action} sent to its coordinator {', '.join(done)}")
    return 0


def send_control(args: argparse.Namespace, run_id: str, action: str) -> list[str]:
    """Join briefly (``args``: the member options) and send ``action`` for ``run_id``;
    the names of the nodes coordinating the run that took it (none: nobody does)."""
    message = {"op": "control", "run": run_id, "action": action}
    with temporary_member(args) as system:
        answers = ask_every_member(system, message, args.timeout)
        system.leave(drain_timeout=0.0)
    return [name for name, answer in answers.items() if answer is True]
