"""Print what every node of a cluster is doing: members and heartbeats, runs,
actors, node actor pool, hosted steps and transport counters.

    actorflow status --join coordinator@tcp://127.0.0.1:7100 --keys keys --name admin

This tool joins the cluster briefly as its own member (so with CURVE it needs
a key pair of its own in the keys directory, here ``admin``), asks every
member's ``$system`` for ``stats``, and leaves.
"""

from __future__ import annotations

import argparse

from runtime._cli._member import add_member_options, ask_every_member, temporary_member
from runtime._stats import SystemStats

HELP = "show members, runs and counters of every node"


def configure(parser: argparse.ArgumentParser) -> None:
    add_member_options(parser)


def run(args: argparse.Namespace) -> int:
    failed = 0
    with temporary_member(args) as system:
        answers = ask_every_member(system, {"op": "stats"}, args.timeout)
        system.leave(drain_timeout=0.0)
    for name, answer in answers.items():
        if isinstance(answer, BaseException):
            failed += 1
            print(f"node {name}: no answer: {answer}")
        else:
            print(SystemStats.from_wire(dict(answer)).render())
    return 1 if failed else 0
