"""Checkpoint store benchmark: what one checkpoint per step costs, early and late in a run.

Run: ``python -m bench._store_bench [--smoke] [--steps N] [--threads T]``. Prints,
per store, the mean append latency over the first and the last tenth of an
N-step chain appended one step at a time (equal when a checkpoint is O(1) in the
steps already recorded), the same with T threads appending to T runs at once
(SQLite: appends per transaction, from group commit), and start/load of a
100k-row context. Files go to a temporary folder on the same filesystem as
``$TMPDIR``: fsync cost depends on that disk, so compare FULL and NORMAL on the
disk you deploy to.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from runtime.store import (
    CheckpointStore,
    MemoryStore,
    RunHeader,
    SQLiteStore,
    StepRecord,
    decode_value,
    encode_value,
)


def _start(store: CheckpointStore, run_id: str, context: bytes) -> int:
    epoch = store.claim(run_id, owner="bench", lease=600)
    store.start(
        RunHeader(run_id, "bench", "fp", context, 0.0), epoch=epoch, state="running", updated_at=0
    )
    return epoch


def chain_ms_per_append(store: CheckpointStore, steps: int) -> tuple[float, float]:
    """Mean ms per append over the first and the last tenth of an N-step chain."""
    run_id = f"chain-{time.monotonic_ns()}-{threading.get_ident()}"
    epoch = _start(store, run_id, encode_value({}, what="bench context"))
    tenth = max(1, steps // 10)
    times: list[float] = []
    for index in range(steps):
        output = encode_value([{"index": index, "rows": 10}, {}], what="bench output")
        record = StepRecord(f"step-{index}", "Completed", 1, output, None, 0.0, 0.0)
        started = time.perf_counter()
        store.append(run_id, epoch=epoch, records=[record], state="running", updated_at=index)
        times.append(time.perf_counter() - started)
    return sum(times[:tenth]) / tenth * 1000, sum(times[-tenth:]) / tenth * 1000


def threads_ms_per_append(store: CheckpointStore, steps: int, threads: int) -> float:
    """Mean wall ms per append with ``threads`` runs appending at once."""
    barrier = threading.Barrier(threads)
    elapsed: list[float] = []

    def one() -> None:
        barrier.wait(60)
        started = time.perf_counter()
        chain_ms_per_append(store, steps)
        elapsed.append(time.perf_counter() - started)

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(600)
    return max(elapsed) / (steps * threads) * 1000


def large_context_ms(store: CheckpointStore, rows: int) -> tuple[float, float, float]:
    context = {
        "rows": [{"id": index, "name": f"row-{index}", "v": index * 0.5} for index in range(rows)]
    }
    started = time.perf_counter()
    blob = encode_value(context, what="bench context")
    encoded = time.perf_counter()
    _start(store, "large", blob)
    saved = time.perf_counter()
    decode_value(store.load("large").context, what="bench context")
    loaded = time.perf_counter()
    return (encoded - started) * 1000, (saved - encoded) * 1000, (loaded - saved) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check it runs")
    parser.add_argument("--steps", type=int, default=2000, help="length of the step chain")
    parser.add_argument("--threads", type=int, default=4, help="runs appending at once")
    args = parser.parse_args()
    steps = 20 if args.smoke else args.steps
    rows = 1000 if args.smoke else 100_000
    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as folder:
        factories: dict[str, Callable[[], CheckpointStore]] = {
            "memory": MemoryStore,
            "sqlite FULL": lambda: SQLiteStore(Path(folder) / "full.db"),
            "sqlite NORMAL": lambda: SQLiteStore(Path(folder) / "normal.db", synchronous="NORMAL"),
        }
        print(f"{steps}-step chain, {args.threads} threads, {rows}-row context")
        print(
            f"{'store':<14} {'first ms':>9} {'last ms':>8} {'threads ms':>11} {'per txn':>8} "
            f"{'encode ms':>10} {'start ms':>9} {'load ms':>8}"
        )
        for name, factory in factories.items():
            store = factory()
            try:
                first, last = chain_ms_per_append(store, steps)
                threaded = threads_ms_per_append(store, steps, args.threads)
                per_txn = "-"
                if isinstance(store, SQLiteStore):
                    stats = store.stats()
                    per_txn = f"{stats.appends / max(1, stats.append_transactions):.2f}"
                encode_ms, start_ms, load_ms = large_context_ms(store, rows)
            finally:
                store.close()
            print(
                f"{name:<14} {first:>9.3f} {last:>8.3f} {threaded:>11.3f} {per_txn:>8} "
                f"{encode_ms:>10.1f} {start_ms:>9.1f} {load_ms:>8.1f}"
            )


if __name__ == "__main__":
    main()
