"""Waiting for a run in the cluster from the command line: progress line, outcome, exit code."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from actors import ResultTimeout
from runtime._cli._common import is_json_value, print_json
from runtime._client import RunInfo, SubmittedRun
from runtime.store import decode_value

__all__ = ["add_wait_options", "report_started", "wait_and_report"]

_CLEAR = "\x1b[K"  # erase to the end of the line (as ``ProgressObserver`` on a terminal)


def add_wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="stop waiting after S seconds (exit 1; the run goes on)",
    )
    parser.add_argument(
        "--answer-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds to wait for each answer of a node (10)",
    )


def report_started(handle: SubmittedRun, workflow: str, *, json_output: bool) -> None:
    if json_output:
        print_json({"run_id": handle.id, "workflow": workflow, "node": handle.node})
    else:
        print(f"run {handle.id} of {workflow} submitted to {handle.node}")


class _ProgressLine:
    """The node's progress line of the run on stderr: rewritten in place on a terminal,
    else printed whenever it changes."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.terminal = sys.stderr.isatty()
        self.shown = ""

    def __call__(self, info: RunInfo) -> None:
        line = f"run {self.run_id}: {info.progress or info.state or 'starting'}"
        if line == self.shown:
            return
        self.shown = line
        if self.terminal:
            sys.stderr.write(f"\r{line}{_CLEAR}")
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def end(self) -> None:
        if self.terminal and self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def wait_and_report(handle: SubmittedRun, args: argparse.Namespace) -> int:
    """Wait for ``handle`` with a progress line, print its outcome; 0 only if Completed."""
    if args.timeout is not None and not args.timeout > 0:
        print(f"--timeout must be > 0 seconds, got {args.timeout}", file=sys.stderr)
        return 2
    progress = _ProgressLine(handle.id)
    try:
        info = handle.wait(args.timeout, on_info=progress)
    except ResultTimeout as exc:
        progress.end()
        info = handle.info()
        _print_outcome(info, args.json)
        print(f"actorflow: {exc}", file=sys.stderr)
        return 1
    progress.end()
    _print_outcome(info, args.json)
    return 0 if info.state == "Completed" else 1


def _print_outcome(info: RunInfo, json_output: bool) -> None:
    output: Any = None
    readable = info.output is not None
    if readable:
        assert info.output is not None
        output = decode_value(info.output, what=f"run {info.run_id} output")
    if json_output:
        plain = is_json_value(output)
        print_json(
            {
                "run_id": info.run_id,
                "workflow": info.workflow,
                "node": info.node,
                "state": info.state,
                "done": info.done,
                "output": output if plain else None,
                "output_repr": None if plain else repr(output),
                "error": info.error,
            }
        )
        return
    if info.state == "Completed":
        print(f"run {info.run_id}: Completed on {info.node}; output: {output!r}")
    elif info.done:
        print(
            f"run {info.run_id}: {info.state} on {info.node}: {info.error or 'no error recorded'}"
        )
    else:
        print(f"run {info.run_id}: still {info.state} on {info.node}")
