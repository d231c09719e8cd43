"""Connect to a running cluster as a client (not a member) to ask its nodes something."""

from __future__ import annotations

import argparse
from pathlib import Path

from runtime._cli._common import UsageError
from runtime._client import Client
from transport import is_loopback_endpoint

__all__ = ["add_client_options", "check_security", "open_client"]


def add_client_options(
    parser: argparse.ArgumentParser, *, required: bool = True, timeout: bool = True
) -> None:
    """``--join``, ``--keys``, ``--name``, ``--plaintext`` and (with ``timeout``) ``--timeout``
    for each answer; a command whose ``--timeout`` means something else omits it."""
    parser.add_argument(
        "--join",
        required=required,
        metavar="SEED",
        help="a member's endpoint (NAME@tcp://host:port with --keys)",
    )
    parser.add_argument(
        "--keys", type=Path, help="keys directory (CURVE); needs --name's key pair there"
    )
    parser.add_argument(
        "--name",
        default=None,
        help="this client's name (with --keys: the name of its key pair, on the members' "
        "allowlist; default client-<pid>-<random>). Never a member's name",
    )
    parser.add_argument("--plaintext", action="store_true", help="unencrypted, loopback only")
    if timeout:
        parser.add_argument(
            "--timeout", type=float, default=5.0, help="seconds to wait for each answer (5)"
        )


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


def open_client(args: argparse.Namespace, answer_timeout: float | None = None) -> Client:
    """A ``Client`` connected to ``--join`` with the client options of ``args``.

    Raises:
        UsageError: bad option combinations (see ``check_security``; --keys without --name).
    """
    check_security(args.keys, args.plaintext, listen=None, seeds=[args.join])
    if args.keys is not None and not args.name:
        raise UsageError("--keys needs --name NAME: the client's own key pair in the keys dir")
    timeout = args.timeout if answer_timeout is None else answer_timeout
    if not timeout > 0:
        raise UsageError(f"--timeout must be > 0 seconds, got {timeout}")
    return Client(
        args.join, keys=args.keys, name=args.name, plaintext=args.plaintext, timeout=timeout
    )
