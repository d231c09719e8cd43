"""The ``actorflow`` command line: one module per command, registered in ``COMMANDS``.

Each command module has ``HELP`` (one line), ``configure(parser)`` and
``run(args) -> int``; its module docstring is the command's long help.
Exit codes: 0 success, 1 the operation failed (the message says why),
2 bad usage (argparse's convention; a command raises ``UsageError`` for bad
usage it can only see after parsing, and it is reported the same way).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from runtime._cli import (
    control,
    graph,
    keys,
    node,
    prune,
    resume,
    runs,
    show,
    status,
    submit,
    wait,
    web,
)
from runtime._cli._common import UsageError
from transport import WorkflowError

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, ModuleType] = {
    "runs": runs,
    "show": show,
    "resume": resume,
    "prune": prune,
    "node": node,
    "keys": keys,
    "status": status,
    "control": control,
    "submit": submit,
    "wait": wait,
    "graph": graph,
    "web": web,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="actorflow", description="Supervised, durable, multi-host workflows."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        sub = commands.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.configure(sub)
        sub.set_defaults(command_parser=sub)  # for UsageError: "actorflow CMD: error: ..."
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = COMMANDS[args.command].run(args)
    except UsageError as exc:
        command_parser: argparse.ArgumentParser = args.command_parser
        command_parser.error(str(exc))  # usage + message on stderr, exits 2
    except (WorkflowError, ValueError, OSError) as exc:
        print(f"actorflow {args.command}: {exc}", file=sys.stderr)
        return 1
    return code
