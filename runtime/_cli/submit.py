"""Hand a run to a running cluster: the member reached coordinates and checkpoints it.

    actorflow submit etl --join coordinator@tcp://127.0.0.1:7100 --keys keys --name admin \\
        --ctx '{"workdir": "/tmp/etl", "source": "/tmp/etl/sales.csv"}' --wait

The workflow is found by the name the member registered (the ``workflows()``
of its ``--app`` module); an unknown name is an error listing the names it
has. ``--ctx`` is the run's context as JSON, or ``@FILE`` holding JSON
(default ``null``). The member reached (the seed) coordinates the run and
checkpoints it in its own store, so this command may exit at once: it prints
the run id (``actorflow wait RUN_ID`` waits for it later). With ``--wait`` it
shows a progress line on stderr until the run ends, then its outcome; a run
that did not complete exits 1. This tool is a client, not a member (see
``status``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from runtime._cli._common import UsageError, add_json_option
from runtime._cli._connect import add_client_options, open_client
from runtime._cli._watch import add_wait_options, report_started, wait_and_report
from runtime._submissions import check_run_id

HELP = "hand a run of a registered workflow to a running cluster"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workflow", metavar="WORKFLOW", help="the workflow's registered name")
    parser.add_argument(
        "--ctx", default="null", metavar="JSON|@FILE", help="the run's context as JSON (null)"
    )
    parser.add_argument("--run-id", default=None, help="the run's id (default: a new one)")
    parser.add_argument("--wait", action="store_true", help="wait for the run to end")
    add_client_options(parser, timeout=False)
    add_wait_options(parser)
    add_json_option(parser)


def parse_context(text: str) -> Any:
    """The ``--ctx`` value: JSON, or ``@FILE`` holding JSON.

    Raises:
        UsageError: an unreadable file or text that is not JSON, named.
    """
    source = "--ctx"
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text()
        except OSError as exc:
            raise UsageError(f"--ctx @{path}: cannot read it: {exc.strerror or exc}") from None
        source = f"--ctx @{path}"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source} is not valid JSON: {exc}") from None


def run(args: argparse.Namespace) -> int:
    ctx = parse_context(args.ctx)
    if args.run_id is not None:
        try:
            check_run_id(args.run_id)
        except ValueError as exc:
            raise UsageError(f"--run-id: {exc}") from None
    with open_client(args, answer_timeout=args.answer_timeout) as client:
        handle = client.submit(args.workflow, ctx, run_id=args.run_id)
        if not args.wait:
            report_started(handle, args.workflow, json_output=args.json)
            return 0
        return wait_and_report(handle, args)
