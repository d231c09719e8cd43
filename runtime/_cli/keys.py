"""Generate CURVE key pairs for cluster nodes.

    actorflow keys generate DIR --name coordinator --name worker-1 --name worker-2

Writes ``DIR/<name>.key`` (public certificate: copy it to every member's keys
directory — the allowlist is every ``*.key`` there) and ``DIR/<name>.key_secret``
(mode 0600: keep it on that node's host only).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transport import generate_keys

HELP = "generate CURVE keys for nodes (secret files 0600)"


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    generate = actions.add_parser("generate", help="write key pairs into DIR")
    generate.add_argument("directory", type=Path, metavar="DIR")
    generate.add_argument("--name", action="append", required=True, help="node name (repeatable)")


def run(args: argparse.Namespace) -> int:
    for name in args.name:
        public, secret = generate_keys(args.directory, name)
        print(f"{name}: public {public}, secret {secret} (0600)")
    return 0
