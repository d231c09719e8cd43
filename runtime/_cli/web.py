"""Serve a web page of the runs: the run list, each run's steps and its workflow diagram.

    actorflow web --db state.db --app examples.etl
    actorflow web --db state.db --allow-control --join coordinator@tcp://127.0.0.1:7100 \\
        --keys keys --name admin

The pages update themselves every second (a small inline script polling a
JSON twin of the page; nothing is fetched from the internet). The run list
shows each run's id, workflow, state, steps done / recorded and age; a run
page shows each recorded step's state, attempts, node, start, duration and error,
and, when ``--app MODULE``'s ``workflows()`` has the run's workflow, its
diagram coloured by step state (Mermaid text, and an SVG if Graphviz's
``dot`` is installed).

Read-only by default. ``--allow-control`` adds pause / unpause / cancel
buttons, which reach the cluster as ``actorflow control`` does (``--join``
with ``--keys DIR --name ME`` or ``--plaintext``). The server binds to
loopback (127.0.0.1:8765); a non-loopback ``--listen`` is refused unless
``--allow-remote`` is given: there is no login, so anyone who can reach the
port sees every run (and, with ``--allow-control``, can cancel them).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

from runtime._cli._common import UsageError, add_db_option, db_name, open_store
from runtime._cli._connect import add_client_options, check_security
from runtime._cli._web_graph import GraphRenderer
from runtime._cli._web_server import Controller, WebConfig, WebServer
from runtime._cli.control import send_control
from runtime._cli.resume import load_workflows
from runtime.workflow import Workflow

HELP = "serve a live web view of the runs (read-only unless --allow-control)"

DEFAULT_LISTEN = "127.0.0.1:8765"


def configure(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    parser.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"where to serve (default {DEFAULT_LISTEN}; port 0 picks a free one)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --listen address that is not loopback (no login: anyone reaching it sees "
        "every run)",
    )
    parser.add_argument(
        "--app", metavar="MODULE", help="module whose workflows() lists workflows (diagrams)"
    )
    parser.add_argument(
        "--allow-control",
        action="store_true",
        help="add pause / unpause / cancel buttons (needs --join and --keys/--plaintext)",
    )
    add_client_options(parser, required=False)


def parse_listen(listen: str, *, allow_remote: bool) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as (host, port).

    Raises:
        UsageError: malformed, or not loopback without ``allow_remote``.
    """
    host, sep, port_text = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--listen {listen!r}: expected HOST:PORT, e.g. {DEFAULT_LISTEN}")
    if not allow_remote and not is_loopback_host(host):
        raise UsageError(
            f"--listen {listen!r} is not a loopback address: the web view has no login, so "
            "anyone who reaches it sees every run; give --allow-remote to serve it anyway"
        )
    return host, int(port_text)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname or '0.0.0.0'-like wildcard: assume it reaches the network


def controller_for(args: argparse.Namespace) -> Controller | None:
    """What the buttons call, or None (read-only); checks the member options first."""
    if not args.allow_control:
        if args.join or args.keys or args.plaintext:
            raise UsageError("--join, --keys and --plaintext are for --allow-control")
        return None
    if not args.join:
        raise UsageError(
            "--allow-control needs --join SEED (and --keys DIR --name ME or --plaintext)"
        )
    check_security(args.keys, args.plaintext, listen=None, seeds=[args.join])

    def control(run_id: str, action: str) -> str:
        done = send_control(args, run_id, action)
        if not done:
            return f"{action}: no node coordinates run {run_id} (finished, or not in this cluster)"
        return f"{action} sent to its coordinator {', '.join(done)}"

    return control


def run(args: argparse.Namespace) -> int:
    host, port = parse_listen(args.listen, allow_remote=args.allow_remote)
    controller = controller_for(args)
    open_store(args.db).close()  # a missing file is an error now, not on the first page
    flows: dict[str, Workflow[Any, Any]] = {}
    if args.app:
        flows = {wf.name: wf for wf in load_workflows(args.app)}
    config = WebConfig(
        db=args.db,
        graphs=GraphRenderer.find_dot(flows, args.app),
        controller=controller,
        allow_remote=args.allow_remote,
    )
    with WebServer((host, port), config) as server:
        mode = "with pause/unpause/cancel" if controller else "read-only"
        print(f"serving {db_name(args.db)} at {server.url} ({mode}); Ctrl-C stops", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
    return 0
