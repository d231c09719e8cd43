"""Submit to first step started: a client hands a run to a running ``actorflow node``.

The node is a real ``actorflow node`` process (plaintext loopback, its own
SQLite store, checkpointing after each step as nodes do). The client, in this
process, submits the one-step workflow ``bench-stamp``, whose step returns
``time.monotonic()`` as it starts (one clock for the whole host on Linux); the
latency is that minus the moment ``submit`` was called: the ask, the run's
start (claim and first checkpoint write, ``synchronous=FULL``), placement on a
node actor and the step's start. Runs go one at a time (the next is submitted
once the previous one ended). The baseline is one round trip of an ask from
the same client to the same node (``$system`` ping), in the same run.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench._remote import ROOT, _percentile, _read_line
from bench._row import Config, Family, Row, Series
from runtime import Client, node_command

__all__ = ["FAMILY"]

_POLL = 0.002  # seconds between two looks at a submitted run's end


def _submit_latencies(client: Client, runs: int) -> list[float]:
    """Microseconds from ``submit`` to the step's start, one run at a time."""
    latencies = []
    for _ in range(runs):
        submitted = time.monotonic()
        handle = client.submit("bench-stamp", None)
        deadline = time.monotonic() + 30
        while not (info := handle.info()).done:
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {handle.id} not done in 30 s ({info.state})")
            time.sleep(_POLL)  # the node is asked, not signalled: bounded by the deadline
        started: float = handle.result(timeout=1)
        latencies.append((started - submitted) * 1e6)
    return latencies


def _ask_latencies(client: Client, asks: int) -> list[float]:
    """Microseconds of one ask round trip from the client to the node, one at a time."""
    latencies = []
    for _ in range(asks):
        began = time.perf_counter()
        answers = client.ask_members({"op": "ping"})
        latencies.append((time.perf_counter() - began) * 1e6)
        if list(answers.values()) != ["pong"]:
            raise RuntimeError(f"ping answered {answers}")
    return latencies


def run(config: Config) -> list[Row]:
    runs = config.size(100, 5)
    p50: tuple[list[float], list[float]] = ([], [])
    p99: tuple[list[float], list[float]] = ([], [])
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-submit-") as tmp:
        node = subprocess.Popen(
            node_command(
                "bench-node",
                apps=["bench._submit_app"],
                plaintext=True,
                db=Path(tmp) / "state.db",
                drain_timeout=1,
            ),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert node.stdout is not None
            address = _read_line(node.stdout, "node bench-node up at ", 60).split()[-1]
            with Client(address, plaintext=True, timeout=30) as client:
                _submit_latencies(client, 2)  # warm up: imports, the store, node actors
                _ask_latencies(client, 20)
                measures = (_submit_latencies, _ask_latencies)
                for repetition in range(config.repeats):
                    for offset in range(2):
                        index = (repetition + offset) % 2
                        latencies = measures[index](client, runs)
                        p50[index].append(statistics.median(latencies))
                        p99[index].append(_percentile(latencies, 0.99))
        finally:
            node.send_signal(signal.SIGTERM)  # drain, leave, exit
            try:
                node.wait(30)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait(10)
            if node.stdout is not None:
                node.stdout.close()
    rows = []
    for label, figures in (("p50", p50), ("p99", p99)):
        rows.append(
            Row(
                "submit",
                f"submit to first step started {label} ({runs} runs, one at a time)",
                "us",
                Series("Client.submit -> step start on the node", tuple(figures[0])),
                (Series("one ask round trip, client -> node", tuple(figures[1])),),
                None,
                "node: actorflow node, SQLite store, checkpoint after each step",
            )
        )
    return rows


FAMILY = Family("submit", run)
