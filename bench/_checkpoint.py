"""Checkpoint rows (TODO hook): per-step cost of the chain with each checkpoint setting.

Not available until ``runtime`` exports ``CheckpointStrategy`` and
``ActorSystem`` accepts ``store=`` and ``checkpoint=`` (the store branch's
``ActorSystem("b", store=SQLiteStore(path), checkpoint=CheckpointStrategy.AFTER_EACH_STEP)``).
Availability is detected at run time, so these rows start measuring as soon
as that is merged; until then they are reported N/A.

When available: the chain of ``bench._steps`` (same shape, same length) with
``CheckpointStrategy.NONE`` (the baseline), ``AFTER_EACH_STEP`` on a
``SQLiteStore`` (WAL, its default synchronous level) and on a ``MemoryStore``.
"""

from __future__ import annotations

import inspect
import tempfile
import time
from pathlib import Path
from typing import Any

import runtime
from bench._row import Config, Family, Row, interleaved
from bench._steps import chain_for
from runtime import ActorSystem, Workflow
from runtime.store import MemoryStore, SQLiteStore

__all__ = ["FAMILY", "missing"]

_RESULT_TIMEOUT = 600.0


def missing() -> list[str]:
    """What the runtime still lacks for these rows; empty when they can run."""
    lacks = []
    if not hasattr(runtime, "CheckpointStrategy"):
        lacks.append("runtime.CheckpointStrategy")
    parameters = inspect.signature(ActorSystem.__init__).parameters
    lacks.extend(
        f"ActorSystem({name}=)" for name in ("store", "checkpoint") if name not in parameters
    )
    return lacks


def _store_class(name: str) -> Any:
    """``runtime.<name>`` if exported, else from its private module (as bench._store_bench does)."""
    private = {"SQLiteStore": SQLiteStore, "MemoryStore": MemoryStore}
    return getattr(runtime, name, None) or private[name]


def _us_per_step(workflow: Workflow[Any, Any], steps: int, setting: str, folder: Path) -> float:
    strategy_type: Any = runtime.CheckpointStrategy  # type: ignore[attr-defined]
    options: dict[str, Any] = {}
    if setting == "none":
        options["checkpoint"] = strategy_type.NONE
    else:
        options["checkpoint"] = strategy_type.AFTER_EACH_STEP
        if setting == "sqlite":
            options["store"] = _store_class("SQLiteStore")(folder / f"{time.monotonic_ns()}.db")
        else:
            options["store"] = _store_class("MemoryStore")()
    system: Any = ActorSystem
    with system("bench-checkpoint", **options) as actor_system:
        started = time.perf_counter()
        actor_system.run(workflow, {}).result(timeout=_RESULT_TIMEOUT)
        elapsed = time.perf_counter() - started
    close = getattr(options.get("store"), "close", None)
    if close is not None:
        close()
    return elapsed / steps * 1e6


def run(config: Config) -> list[Row]:
    steps = config.size(1000, 20)
    lacks = missing()
    if lacks:
        return [
            Row(
                "checkpoint",
                f"{steps}-step chain, {setting}",
                "us/step",
                None,
                note="not available: runtime lacks " + ", ".join(lacks),
                unavailable="N/A",
            )
            for setting in (
                "AFTER_EACH_STEP, SQLiteStore (WAL)",
                "AFTER_EACH_STEP, MemoryStore",
            )
        ]
    workflow, note = chain_for(steps)
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as name:
        folder = Path(name)
        none, sqlite, memory = interleaved(
            config.repeats,
            [
                ("checkpoint NONE", lambda: _us_per_step(workflow, steps, "none", folder)),
                ("sqlite", lambda: _us_per_step(workflow, steps, "sqlite", folder)),
                ("memory", lambda: _us_per_step(workflow, steps, "memory", folder)),
            ],
        )
    return [
        Row(
            "checkpoint",
            f"{steps}-step chain, {label}",
            "us/step",
            series,
            (none,),
            note=note,
        )
        for label, series in (
            ("AFTER_EACH_STEP, SQLiteStore (WAL)", sqlite),
            ("AFTER_EACH_STEP, MemoryStore", memory),
        )
    ]


FAMILY = Family("checkpoint", run)
