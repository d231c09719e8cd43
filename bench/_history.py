"""Run history rows: does checkpointing or finishing runs cost more as history grows?

- ``AFTER_EACH_STEP`` cost per step of a long no-op chain against the same
  cost on a chain ten times shorter (``MemoryStore``, and ``SQLiteStore`` at
  its default ``synchronous="FULL"``): a flat per-step cost gives 1x.
- A 100,000-step chain checkpointed after each step on SQLite, in a fresh
  interpreter: microseconds per step and peak RSS (``ru_maxrss``) against a
  1,000-step chain; given up (N/A) after ``_LONG_CHAIN_TIMEOUT`` seconds.
- ``parallel`` over 1,000 no-op steps checkpointed after each step on
  ``SQLiteStore(synchronous="FULL")`` against the same fan-out without checkpoints.
- RSS of a fresh interpreter after 10,000 finished one-step runs in one
  ``ActorSystem`` against the same after 100 runs.

Every SQLite sample gets a fresh file in its own temporary folder, removed
after the sample. Workers: ``python -m bench._history chain STEPS FOLDER`` and
``python -m bench._history runs N`` print one JSON line.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._memory import rss_bytes, worker_json
from bench._row import Config, Family, Row, Series, Target, interleaved
from bench._steps import linear_chain, noop
from runtime import (
    ActorSystem,
    CheckpointStore,
    CheckpointStrategy,
    MemoryStore,
    SQLiteStore,
    Workflow,
    parallel,
    task,
)

__all__ = ["FAMILY"]

_RESULT_TIMEOUT = 900.0
_LONG_CHAIN_TIMEOUT = 300.0  # seconds one 100,000-step sample may take before N/A
_MIB = 1024 * 1024


def _us_per_step(workflow: Workflow[Any, Any], steps: int, store: str) -> float:
    """Microseconds per step of one run; ``store``: "none" (no checkpoint), "memory", "sqlite"."""
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as folder:
        checkpoint_store: CheckpointStore | None = None
        if store == "memory":
            checkpoint_store = MemoryStore()
        elif store == "sqlite":
            checkpoint_store = SQLiteStore(Path(folder) / "run.db", synchronous="FULL")
        options: dict[str, Any] = {}
        if checkpoint_store is not None:
            options = {"store": checkpoint_store, "checkpoint": CheckpointStrategy.AFTER_EACH_STEP}
        try:
            with ActorSystem("bench-history", **options) as system:
                started = time.perf_counter()
                system.run(workflow, {}).result(timeout=_RESULT_TIMEOUT)
                elapsed = time.perf_counter() - started
        finally:
            if checkpoint_store is not None:
                checkpoint_store.close()
    return elapsed / steps * 1e6


def _growth_rows(config: Config) -> list[Row]:
    long, short = config.size(10_000, 500), config.size(1_000, 50)
    long_chain, short_chain = linear_chain(long), linear_chain(short)
    for store in ("memory", "sqlite"):  # warm up at the short length: a long one costs a sample
        _us_per_step(short_chain, short, store)
    memory_long, memory_short, sqlite_long, sqlite_short = interleaved(
        config.repeats,
        [
            (f"{long:,}-step chain", lambda: _us_per_step(long_chain, long, "memory")),
            (f"{short:,}-step chain", lambda: _us_per_step(short_chain, short, "memory")),
            (f"{long:,}-step chain", lambda: _us_per_step(long_chain, long, "sqlite")),
            (f"{short:,}-step chain", lambda: _us_per_step(short_chain, short, "sqlite")),
        ],
        warmup=False,
    )
    return [
        Row(
            "history",
            f"AFTER_EACH_STEP per step, {long:,}-step chain, {label}",
            "us/step",
            value,
            (baseline,),
            Target("ratio", "<=", 1.2),
            "no-op left fold .then chain; ratio 1x = flat per-step cost",
        )
        for label, value, baseline in (
            ("MemoryStore", memory_long, memory_short),
            ("SQLite FULL", sqlite_long, sqlite_short),
        )
    ]


def _chain_sample(steps: int, peaks: list[float]) -> float:
    """us/step of one SQLite-checkpointed chain in a fresh interpreter; peak RSS to ``peaks``."""
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as folder:
        result = worker_json(
            "bench._history", "chain", str(steps), folder, timeout=_LONG_CHAIN_TIMEOUT
        )
    peaks.append(result["peak_rss_mib"])
    return float(result["us_per_step"])


def _long_chain_rows(config: Config) -> list[Row]:
    long, short = config.size(100_000, 2_000), config.size(1_000, 200)
    names = (
        f"{long:,}-step chain, AFTER_EACH_STEP, SQLite: time",
        f"{long:,}-step chain, AFTER_EACH_STEP, SQLite: peak RSS",
    )
    peaks: dict[int, list[float]] = {long: [], short: []}
    try:
        value, baseline = interleaved(
            1,  # one sample: 100k checkpointed steps take about a minute each
            [
                (f"{long:,}-step chain", lambda: _chain_sample(long, peaks[long])),
                (f"{short:,}-step chain", lambda: _chain_sample(short, peaks[short])),
            ],
            warmup=False,  # every sample is a fresh process already
        )
    except subprocess.TimeoutExpired:
        note = (
            f"did not finish within {_LONG_CHAIN_TIMEOUT:.0f} s (killed): "
            f"more than {_LONG_CHAIN_TIMEOUT / long * 1e6:,.0f} us/step"
        )
        return [
            Row("history", name, unit, None, note=note, unavailable="N/A")
            for name, unit in zip(names, ("us/step", "MiB"), strict=True)
        ]
    note = "one sample, fresh interpreter; peak RSS is the child's ru_maxrss"
    return [
        Row("history", names[0], "us/step", value, (baseline,), note=note),
        Row(
            "history",
            names[1],
            "MiB",
            Series(value.name, tuple(peaks[long])),
            (Series(baseline.name, tuple(peaks[short])),),
            note=note,
        ),
    ]


def _fan_out_rows(config: Config) -> list[Row]:
    branches = config.size(1_000, 20)
    workflow = parallel(*[task(noop) for _ in range(branches)])
    value, baseline = interleaved(
        config.repeats,
        [
            ("AFTER_EACH_STEP, SQLite FULL", lambda: _us_per_step(workflow, branches, "sqlite")),
            ("same fan-out, no checkpoint", lambda: _us_per_step(workflow, branches, "none")),
        ],
    )
    return [
        Row(
            "history",
            f"parallel({branches:,} no-op steps), AFTER_EACH_STEP, SQLite FULL",
            "us/step",
            value,
            (baseline,),
            Target("ratio", "<=", 2.0),
            "wall time of the whole fan-out / steps",
        )
    ]


def _runs_sample(runs: int) -> float:
    return float(worker_json("bench._history", "runs", str(runs))["rss_mib"])


def _finished_runs_rows(config: Config) -> list[Row]:
    many, few = config.size(10_000, 1_000), config.size(100, 100)
    value, baseline = interleaved(
        config.repeats,
        [
            (f"RSS after {many:,} runs", lambda: _runs_sample(many)),
            (f"RSS after {few:,} runs", lambda: _runs_sample(few)),
        ],
        warmup=False,  # every sample is a fresh process already
    )
    difference = value.median - baseline.median
    return [
        Row(
            "history",
            f"RSS after {many:,} finished one-step runs, one system",
            "MiB",
            value,
            (baseline,),
            Target("delta", "<=", 10.0),
            f"target: <= 10 MiB above the {few:,}-run figure; difference {difference:+.1f} MiB; "
            "no checkpoint, each result() waited, VmRSS after gc, fresh interpreter per sample",
        )
    ]


def run(config: Config) -> list[Row]:
    return [
        *_growth_rows(config),
        *_long_chain_rows(config),
        *_fan_out_rows(config),
        *_finished_runs_rows(config),
    ]


FAMILY = Family("history", run)


def _chain_worker(steps: int, folder: str) -> dict[str, float]:
    workflow = linear_chain(steps)
    store = SQLiteStore(Path(folder) / "chain.db", synchronous="FULL")
    try:
        with ActorSystem(
            "bench-history", store=store, checkpoint=CheckpointStrategy.AFTER_EACH_STEP
        ) as system:
            started = time.perf_counter()
            system.run(workflow, {}).result(timeout=_RESULT_TIMEOUT)
            elapsed = time.perf_counter() - started
    finally:
        store.close()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"us_per_step": elapsed / steps * 1e6, "peak_rss_mib": peak_kib / 1024}


def _runs_worker(runs: int) -> dict[str, float]:
    workflow = task(noop)
    with ActorSystem("bench-history") as system:
        for _ in range(runs):
            system.run(workflow, {}).result(timeout=60)
        gc.collect()
        return {"rss_mib": rss_bytes() / _MIB}


def _main() -> None:
    parser = argparse.ArgumentParser(description="history worker (run by bench._history)")
    commands = parser.add_subparsers(dest="command", required=True)
    chain = commands.add_parser("chain", help="one SQLite-checkpointed chain")
    chain.add_argument("steps", type=int)
    chain.add_argument("folder")
    runs = commands.add_parser("runs", help="N finished one-step runs in one system")
    runs.add_argument("runs", type=int)
    args = parser.parse_args()
    if args.command == "chain":
        print(json.dumps(_chain_worker(args.steps, args.folder)))
    else:
        print(json.dumps(_runs_worker(args.runs)))


if __name__ == "__main__":
    _main()
