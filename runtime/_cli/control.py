"""Pause, unpause or cancel a running run, wherever in the cluster it is coordinated.

    actorflow control RUN_ID pause --join coordinator@tcp://127.0.0.1:7100 --keys keys --name admin

Paused: no new step attempt starts (running ones finish); unpause starts the
held-back ones; cancel ends the run Canceled. The coordinating system must be
a cluster member (``listen=``); this tool connects as a client (see ``status``).
"""

from __future__ import annotations

import argparse

from runtime._cli._connect import add_client_options, open_client

HELP = "pause, unpause or cancel a running run"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.add_argument("action", choices=["pause", "unpause", "cancel"])
    add_client_options(parser)


def run(args: argparse.Namespace) -> int:
    done = send_control(args, args.run_id, args.action)
    if not done:
        print(f"run {args.run_id}: no node coordinates it (finished, or not in this cluster)")
        return 1
    print(f"run {args.run_id}: {args.action} sent to its coordinator {', '.join(done)}")
    return 0


def send_control(args: argparse.Namespace, run_id: str, action: str) -> list[str]:
    """Connect as a client (``args``: the client options) and send ``action`` for
    ``run_id``; the names of the nodes coordinating the run that took it (none: nobody)."""
    with open_client(args) as client:
        return client.control(run_id, action)
