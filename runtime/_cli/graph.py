"""Print a picture of a workflow: Mermaid (the default), Graphviz DOT, or SVG.

The workflow is looked up by name among those ``--app MODULE``'s
``workflows()`` returns, as ``actorflow resume`` does; nothing runs. Mermaid
renders on GitHub and in most Markdown viewers; DOT and SVG need Graphviz
(``apt-get install graphviz``), whose ``dot`` binary turns DOT into SVG.

    actorflow graph --app examples.etl etl
    actorflow graph --app examples.etl etl --format svg > etl.svg
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

from runtime._cli.resume import load_workflows

HELP = "print a diagram of a workflow (mermaid, dot or svg)"

_RENDER_SECONDS = 60.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the workflow's name (wf.named(...))")
    parser.add_argument(
        "--app", required=True, metavar="MODULE", help="module whose workflows() lists workflows"
    )
    parser.add_argument(
        "--format",
        choices=("mermaid", "dot", "svg"),
        default="mermaid",
        help="mermaid (default), dot, or svg (rendered by Graphviz's dot)",
    )


def run(args: argparse.Namespace) -> int:
    flows = {wf.name: wf for wf in load_workflows(args.app)}
    wf = flows.get(args.name)
    if wf is None:
        names = ", ".join(sorted(flows))
        print(
            f"actorflow graph: no workflow named {args.name!r} in --app {args.app}; "
            f"available: {names}",
            file=sys.stderr,
        )
        return 1
    if args.format == "mermaid":
        sys.stdout.write(wf.to_mermaid())
        return 0
    if args.format == "dot":
        sys.stdout.write(wf.to_dot())
        return 0
    return _svg(wf.to_dot())


def _svg(dot_source: str) -> int:
    """Render through Graphviz's ``dot`` binary: Graphviz is a program, not a Python package."""
    dot = shutil.which("dot")
    if dot is None:
        print(
            "actorflow graph: --format svg needs Graphviz's `dot` program, which is not "
            "installed; install graphviz (Debian/Ubuntu: apt-get install graphviz), "
            "or use --format mermaid or --format dot",
            file=sys.stderr,
        )
        return 1
    try:
        svg = render_svg(dot, dot_source, _RENDER_SECONDS)
    except RenderError as exc:
        print(f"actorflow graph: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(svg)
    return 0


class RenderError(Exception):
    """Graphviz could not turn the DOT text into SVG (the message says why)."""


def render_svg(dot: str, source: str, timeout: float) -> str:
    """``dot -Tsvg`` of ``source`` (``dot`` is the binary's path); raises ``RenderError``."""
    try:
        result = subprocess.run(  # noqa: S603 - dot found on PATH, the source is our own text
            [dot, "-Tsvg"],
            input=source,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"dot took over {timeout:g} s; gave up") from exc
    except OSError as exc:
        raise RenderError(f"dot could not run: {exc}") from exc
    if result.returncode != 0:
        raise RenderError(f"dot failed: {result.stderr.strip()}")
    return result.stdout
