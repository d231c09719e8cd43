"""Run a cluster member until SIGTERM/SIGINT, then drain in-flight steps, leave, exit 0.

    actorflow node --name worker-1 --listen tcp://127.0.0.1:7101 \\
                   --join tcp://127.0.0.1:7100 --keys ./keys --app examples.etl

``--app MODULE`` (repeatable) imports a module you name, and registers the
tasks of the workflows its ``workflows()`` returns (and calls its
``register(system)`` if it has one) — peers can only run what is registered
here, and coordinators place a step only on a node that registered its task.
``--keys DIR`` turns on CURVE with the allowlist of the public keys in DIR (see
``actorflow keys``; re-read when its key files change, and on SIGHUP); without
it, ``--plaintext`` is required and only loopback endpoints are accepted.
``--join-timeout S`` (60) is how long the seeds are tried, so a node may start
before its seed (each new reason a seed does not answer is logged); a seed
that refuses this node's key fails the start at once.

A node also takes runs from clients (``actorflow submit``, ``runtime.Client``):
it coordinates them and checkpoints each step in its store (``--db``, default
``$ACTORFLOW_DB`` or ``.actorflow/state.db``, opened when a run first
checkpoints). On start it resumes the unfinished runs of that store whose
owner is gone (``ActorSystem.recover``): restarted on the same ``--db`` after
a crash, a node continues the runs it coordinated. An app's ``register(system)`` may call
``system.register_workflow(wf, context=...)`` to build a submitted run's
context from the JSON a client sent. ``--metrics HOST:PORT`` serves Prometheus
metrics at ``http://HOST:PORT/metrics`` (needs the ``metrics`` extra; it binds
the address given, without authentication). Prints ``node NAME up at ADDRESS``
once listening (and ``metrics at URL`` with ``--metrics``).

``--db`` may also be a ``postgresql://`` URL, a store shared by hosts.
``--adopt`` (with a PostgreSQL store) makes the node a coordinator-capable
member: every ``--adopt-interval`` seconds it takes over the runs whose
owner's lease (``--lease``) expired and continues them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runtime._cli._common import UsageError, add_db_option
from runtime._cli._connect import check_security
from runtime._cli.resume import import_app, load_workflows
from runtime._daemon import serve
from runtime._system import ActorSystem
from runtime.store import DEFAULT_PATH
from runtime.workflow import CheckpointStrategy
from transport import TransportSettings

HELP = "run a cluster member until SIGTERM, then drain and leave"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="this node's name (unique in the cluster)")
    parser.add_argument("--listen", help="endpoint to bind, e.g. tcp://127.0.0.1:7101")
    parser.add_argument(
        "--join",
        action="append",
        default=[],
        metavar="ADDR",
        help="seed endpoint of a member (repeatable)",
    )
    parser.add_argument(
        "--join-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="keep trying the seeds this long (a node may start before its seed) (60)",
    )
    parser.add_argument(
        "--keys", type=Path, help="keys directory: CURVE + allowlist (re-read on SIGHUP)"
    )
    parser.add_argument(
        "--keys-poll",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="look at the keys directory this often, re-read it when changed; 0: SIGHUP only (2)",
    )
    parser.add_argument(
        "--plaintext", action="store_true", help="allow unencrypted TCP (loopback only)"
    )
    parser.add_argument(
        "--shed-budget",
        type=int,
        default=10_000,
        metavar="N",
        help="tells of one peer to one unknown actor refused in a second past which "
        "they are dropped unread for a second or two; 0: never (10000)",
    )
    parser.add_argument(
        "--app",
        action="append",
        default=[],
        metavar="MODULE",
        help="module whose workflows() tasks this node may run (repeatable)",
    )
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics here, e.g. 127.0.0.1:9464 (needs actorflow[metrics])",
    )
    add_db_option(parser, default=False)  # None: the default SQLite file, opened on first use
    parser.add_argument(
        "--adopt",
        action="store_true",
        help="take over runs whose owner's lease expired (needs --db postgresql://...)",
    )
    parser.add_argument(
        "--lease",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long this node's claim on a run lasts without renewal (10)",
    )
    parser.add_argument(
        "--adopt-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds between adoption scans (default: a quarter of --lease)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=0.001,
        metavar="SECONDS",
        help="Python thread switch interval for this process (0.001)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="seconds in-flight steps get to finish on shutdown (10)",
    )


def _register_apps(system: ActorSystem, modules: list[str]) -> None:
    """Run each app's ``register(system)``: peers see what it registers in our hello."""
    for module in modules:
        register = getattr(import_app(module), "register", None)
        if callable(register):
            register(system)


def run(args: argparse.Namespace) -> int:
    if not args.listen and not args.join:
        raise UsageError("give --listen, --join or both")
    if args.shed_budget < 0:
        raise UsageError(f"--shed-budget must be >= 0 (0: never shed), got {args.shed_budget}")
    check_security(args.keys, args.plaintext, listen=args.listen, seeds=args.join)
    if args.adopt and not isinstance(args.db, str):
        raise UsageError("--adopt needs a store shared by hosts: --db postgresql://...")
    # CPU-bound steps hold the GIL; with Python's default 5 ms switch interval every
    # ZeroMQ call of the I/O thread can wait that long, so events and heartbeats lag
    # by hundreds of ms. A member process favours its I/O thread (measured: an event
    # delayed ~200 ms at 5 ms arrives at once at 1 ms).
    sys.setswitchinterval(args.switch_interval)
    flows = [wf for module in args.app for wf in load_workflows(module)]
    system = ActorSystem(
        args.name,
        listen=args.listen,
        join=args.join,
        join_timeout=args.join_timeout,
        keys=args.keys,
        plaintext=args.plaintext,
        transport=TransportSettings(
            keys_poll_interval=args.keys_poll, shed_budget=args.shed_budget
        ),
        workflows=flows,
        metrics=args.metrics,
        store=args.db,  # a SQLite path or a postgresql:// URL; None: the default file
        checkpoint=CheckpointStrategy.AFTER_EACH_STEP,  # the runs clients hand it
        recover=args.adopt,
        lease=args.lease,
        adopt_interval=args.adopt_interval,
        setup=lambda node: _register_apps(node, args.app),  # before the first hello
    )
    # The runs it coordinated before a crash (kill -9, power loss) and whose owner is gone:
    # it continues them, so a submitted run outlives its node's process. After the apps'
    # register(system), which may register workflows too. A node whose store does not
    # exist yet (a worker that never coordinated) has nothing to resume: none is created.
    # With a postgresql:// store, adoption (--adopt) is how runs move between members.
    if not isinstance(args.db, str) and Path(args.db or DEFAULT_PATH).exists():
        system.recover()

    def ready(node: ActorSystem) -> None:
        if node.metrics_address is not None:
            print(f"metrics at http://{node.metrics_address}/metrics", flush=True)
        print(f"node {node.name} up at {node.address}", flush=True)

    # exit_after: a stop signal repeated after the drain (supervisors and test
    # harnesses repeat them) must not kill the process on its way out (-15).
    serve(system, drain_timeout=args.drain_timeout, on_ready=ready, exit_after=True)
    print(f"node {args.name} left the cluster", flush=True)
    return 0
