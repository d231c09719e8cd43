"""Join a cluster briefly as a member of its own, to ask the other nodes something."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from runtime._cli._common import UsageError
from runtime._system import ActorSystem
from runtime.cluster import SYSTEM_PATH
from transport import Address, is_loopback_endpoint

__all__ = ["add_member_options", "ask_every_member", "check_security", "temporary_member"]


def add_member_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--join",
        required=required,
        metavar="SEED",
        help="a member's endpoint (NAME@tcp://host:port with --keys)",
    )
    parser.add_argument("--keys", type=Path, help="keys directory (CURVE); needs --name's key")
    parser.add_argument(
        "--name",
        default=None,
        help="this tool's node name (default cli-<pid>; with --keys, a name "
        "whose key pair is in the keys directory)",
    )
    parser.add_argument("--plaintext", action="store_true", help="unencrypted, loopback only")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait (5)")


def check_security(
    keys: Path | None, plaintext: bool, *, listen: str | None, seeds: list[str]
) -> None:
    """Refuse, in the command line's words, what the transport would refuse without CURVE.

    Raises:
        UsageError: neither ``--keys`` nor ``--plaintext``, or ``--plaintext`` with an
            endpoint that is not loopback (or not ``tcp://host:port``).
    """
    if keys is not None:
        return
    if not plaintext:
        raise UsageError("give --keys DIR (CURVE) or --plaintext (loopback only)")
    endpoints = [("--listen", listen)] if listen else []
    endpoints += [("--join", seed.rpartition("@")[2]) for seed in seeds]
    for option, endpoint in endpoints:
        try:
            loopback = is_loopback_endpoint(endpoint)
        except ValueError as exc:
            raise UsageError(f"{option}: {exc}") from None
        if not loopback:
            raise UsageError(
                f"{option} {endpoint!r} is not a loopback address: --plaintext is for "
                "loopback only; give --keys DIR to use CURVE (see `actorflow keys`)"
            )


def temporary_member(args: argparse.Namespace) -> ActorSystem:
    check_security(args.keys, args.plaintext, listen=None, seeds=[args.join])
    return ActorSystem(
        args.name or f"cli-{os.getpid()}",
        listen="tcp://127.0.0.1:0",
        join=[args.join],
        keys=args.keys,
        plaintext=args.plaintext,
    )


def ask_every_member(
    system: ActorSystem, message: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Ask ``$system`` of every other up member; answers (or the error) by node name."""
    assert system.cluster is not None
    transport = system.cluster.transport
    futures = {
        name: transport.ask(Address(name, SYSTEM_PATH), message, timeout=timeout)
        for name, status in system.members().items()
        if status == "up" and name != system.name
    }
    answers: dict[str, Any] = {}
    for name, future in sorted(futures.items()):
        try:
            answers[name] = future.result(timeout + 1.0)
        except Exception as exc:  # noqa: BLE001 - reported per node
            answers[name] = exc
    return answers
