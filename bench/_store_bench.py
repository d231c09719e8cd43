"""Checkpoint store benchmark: what one checkpoint per step costs.

Run: ``python -m bench._store_bench [--smoke] [--steps N]``. Prints, per store,
the mean save latency of an N-step chain saved one step at a time (incremental,
``changed_steps=[key]``) and rewriting every step each time (``changed_steps=None``,
the O(n^2) shape incremental saves avoid), plus encode/save/load of a 100k-row
context. Files go to a temporary folder on the same filesystem as ``$TMPDIR``:
fsync cost depends on that disk, so compare FULL and NORMAL on the disk you deploy to.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from runtime.store import (
    Checkpoint,
    CheckpointStore,
    MemoryStore,
    SQLiteStore,
    StepRecord,
    decode_value,
    encode_value,
)


def _checkpoint(
    run_id: str, epoch: int, context: bytes, steps: dict[str, StepRecord]
) -> Checkpoint:
    return Checkpoint(run_id, "bench", "fp", "running", context, steps, epoch, 0.0, 0.0, {})


def chain_ms_per_save(store: CheckpointStore, steps: int, *, incremental: bool) -> float:
    run_id = f"chain-{incremental}-{time.monotonic_ns()}"
    epoch = store.claim(run_id, owner="bench", lease=600)
    records: dict[str, StepRecord] = {}
    started = time.perf_counter()
    for index in range(steps):
        key = f"step-{index}"
        output = encode_value({"index": index, "rows": 10}, what="bench output")
        records[key] = StepRecord(key, "completed", 1, output, None, 0.0, 0.0)
        context = encode_value({"done": index}, what="bench context")
        changed = [key] if incremental else None
        store.save(_checkpoint(run_id, epoch, context, records), changed_steps=changed)
    return (time.perf_counter() - started) / steps * 1000


def large_context_ms(store: CheckpointStore, rows: int) -> tuple[float, float, float]:
    context = {
        "rows": [{"id": index, "name": f"row-{index}", "v": index * 0.5} for index in range(rows)]
    }
    epoch = store.claim("large", owner="bench", lease=600)
    started = time.perf_counter()
    blob = encode_value(context, what="bench context")
    encoded = time.perf_counter()
    store.save(_checkpoint("large", epoch, blob, {}))
    saved = time.perf_counter()
    decode_value(store.load("large").context, what="bench context")
    loaded = time.perf_counter()
    return (encoded - started) * 1000, (saved - encoded) * 1000, (loaded - saved) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check it runs")
    parser.add_argument("--steps", type=int, default=1000, help="length of the step chain")
    args = parser.parse_args()
    steps = 20 if args.smoke else args.steps
    rows = 1000 if args.smoke else 100_000
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as folder:
        factories: dict[str, Callable[[], CheckpointStore]] = {
            "memory": MemoryStore,
            "sqlite FULL": lambda: SQLiteStore(Path(folder) / "full.db"),
            "sqlite NORMAL": lambda: SQLiteStore(Path(folder) / "normal.db", synchronous="NORMAL"),
        }
        print(f"{steps}-step chain, {rows}-row context")
        print(
            f"{'store':<14} {'incr ms/save':>13} {'full ms/save':>13} "
            f"{'encode ms':>10} {'save ms':>8} {'load ms':>8}"
        )
        for name, factory in factories.items():
            store = factory()
            try:
                incremental = chain_ms_per_save(store, steps, incremental=True)
                full = chain_ms_per_save(store, steps, incremental=False)
                encode_ms, save_ms, load_ms = large_context_ms(store, rows)
            finally:
                store.close()
            print(
                f"{name:<14} {incremental:>13.3f} {full:>13.3f} "
                f"{encode_ms:>10.1f} {save_ms:>8.1f} {load_ms:>8.1f}"
            )


if __name__ == "__main__":
    main()
