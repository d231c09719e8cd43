"""Wait for a run in the cluster to end, showing its progress, then print its outcome.

    actorflow wait 3f9a1c2b7d4e --join coordinator@tcp://127.0.0.1:7100 --keys keys --name admin

Asks the members which one coordinates ``RUN_ID`` (the seed first), then asks
that one for the run's state every 0.2 s, printing its progress line on stderr
(``[3/5] 1 running, ETA 2.0s``) until the run ended. Exit 0 if it Completed,
1 if it Failed, was Canceled, no member knows it, or ``--timeout`` passed
first. ``--json`` prints the outcome as one JSON object (keys: README). This
tool is a client, not a member (see ``status``).
"""

from __future__ import annotations

import argparse
import sys

from runtime._cli._common import add_json_option
from runtime._cli._connect import add_client_options, open_client
from runtime._cli._watch import add_wait_options, wait_and_report

HELP = "wait for a run in the cluster to end, with a progress line"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", metavar="RUN_ID")
    add_client_options(parser, timeout=False)
    add_wait_options(parser)
    add_json_option(parser)


def run(args: argparse.Namespace) -> int:
    with open_client(args, answer_timeout=args.answer_timeout) as client:
        try:
            handle = client.run(args.run_id)
        except KeyError as exc:
            print(f"actorflow wait: {exc.args[0]}", file=sys.stderr)
            return 1
        return wait_and_report(handle, args)
