"""Print what every node of a cluster is doing: members and heartbeats, runs,
actors, node actor pool, hosted steps and transport counters.

    actorflow status --join coordinator@tcp://127.0.0.1:7100 --keys keys --name admin

This tool connects as a client, not a member (it takes no place in the member
table; with CURVE it needs a key pair of its own in the keys directory, here
``admin``, on the members' allowlist), asks every member's ``$system`` for
``stats`` and says goodbye. ``--json`` prints one JSON object instead (keys:
README); exit 1 if a node did not answer.
"""

from __future__ import annotations

import argparse
import sys

from runtime._cli._common import add_json_option, print_json
from runtime._cli._connect import add_client_options, open_client
from runtime._stats import SystemStats

HELP = "show members, runs and counters of every node"


def configure(parser: argparse.ArgumentParser) -> None:
    add_client_options(parser)
    add_json_option(parser)


def run(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        answers = client.ask_members({"op": "stats"})
    stats: list[SystemStats] = []
    unanswered: dict[str, str] = {}
    for name, answer in answers.items():
        if isinstance(answer, BaseException):
            unanswered[name] = f"{type(answer).__name__}: {answer}"
        else:
            stats.append(SystemStats.from_wire(dict(answer)))
    if args.json:
        print_json(
            {
                "nodes": [node.to_wire() for node in stats],
                "unanswered": [{"node": n, "error": e} for n, e in unanswered.items()],
            }
        )
        for name, error in unanswered.items():
            print(f"actorflow status: node {name}: no answer: {error}", file=sys.stderr)
    else:
        for node in stats:
            print(node.render())
        for name, error in unanswered.items():
            print(f"node {name}: no answer: {error}")
    return 1 if unanswered else 0
