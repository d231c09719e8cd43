"""ETL on actorflow: extract -> transform -> [aggregate] -> (validate | log) -> load.

Generates a CSV dataset (100k rows by default) in a work directory, then runs
the pipeline on a local actor system. The load step fails once with a
simulated transient error ("database is locked"); the exponential retry policy
(3 attempts, 1 s initial, x2, 30 s max, temporary errors only) absorbs it.
A progress line (``ProgressObserver``: steps done of planned, running,
retries, ETA) shows while it runs; a per-step summary prints at the end.

The run checkpoints after each step into ``./.actorflow/state.db`` (the
embedded default), so ``actorflow runs`` / ``actorflow show RUN_ID`` list it and
``actorflow resume RUN_ID --app examples.etl`` continues a run that failed.

    python examples/etl.py [--rows N] [--initial-delay S] [--fail-times N]
                           [--workdir DIR] [--db PATH]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import random
import sqlite3
import sys
import tempfile
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from runtime import (
    ActorSystem,
    CheckpointStore,
    CheckpointStrategy,
    Exponential,
    PermanentError,
    ProgressObserver,
    RetryPolicy,
    RunHandle,
    SQLiteStore,
    TemporaryError,
    Workflow,
    register_persistable,
    task,
)

COUNTRIES = ("DE", "FR", "JP", "US", "BR", "IN", "KE", "NZ")


@register_persistable
@dataclass
class EtlContext:
    """What flows between steps: paths and small facts, never the rows themselves.

    Persistable (``to_bytes``/``from_bytes``), so checkpoints can record it.
    """

    workdir: str
    source: str
    fail_times: int = 1
    data_size: int = 0
    rejected: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    validated: bool = False
    loaded: int = 0

    def to_bytes(self) -> bytes:
        return bytes(msgpack.packb(dataclasses.asdict(self)))

    @classmethod
    def from_bytes(cls, data: bytes) -> EtlContext:
        return cls(**msgpack.unpackb(data))


def generate_dataset(path: Path, rows: int, seed: int = 7) -> None:
    """Write ``rows`` sales records, a few of them malformed on purpose."""
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "country", "amount", "sold_at"])
        for i in range(rows):
            amount = f"{rng.uniform(1, 500):.2f}" if i % 997 else "n/a"  # ~0.1% malformed
            writer.writerow([i, rng.choice(COUNTRIES), amount, 1_700_000_000 + i * 37])


def extract(ctx: EtlContext) -> int:
    """Parse the CSV, drop malformed rows, keep the good ones as JSON lines."""
    good = 0
    out = Path(ctx.workdir, "extracted.jsonl")
    with Path(ctx.source).open(newline="") as src, out.open("w") as dst:
        for row in csv.DictReader(src):
            try:
                record = [int(row["id"]), row["country"], float(row["amount"]), int(row["sold_at"])]
            except (KeyError, ValueError):
                ctx.rejected += 1
                continue
            dst.write(json.dumps(record) + "\n")
            good += 1
    return good


def transform(ctx: EtlContext) -> int:
    """Amounts to integer cents; the row count becomes ``data_size``."""
    count = 0
    src, dst = Path(ctx.workdir, "extracted.jsonl"), Path(ctx.workdir, "transformed.jsonl")
    with src.open() as lines, dst.open("w") as out:
        for line in lines:
            record_id, country, amount, sold_at = json.loads(line)
            out.write(json.dumps([record_id, country, round(amount * 100), sold_at]) + "\n")
            count += 1
    ctx.data_size = count
    return count


def aggregate(ctx: EtlContext) -> int:
    """Per-country totals; only worth it (and only run) for large inputs."""
    totals: dict[str, int] = defaultdict(int)
    with Path(ctx.workdir, "transformed.jsonl").open() as lines:
        for line in lines:
            _, country, cents, _ = json.loads(line)
            totals[country] += cents
    ctx.totals = dict(sorted(totals.items()))
    return len(totals)


def validate(ctx: EtlContext) -> int:
    """Every row has a positive amount and a known country, or the run fails for good."""
    with Path(ctx.workdir, "transformed.jsonl").open() as lines:
        for number, line in enumerate(lines, 1):
            _, country, cents, _ = json.loads(line)
            if cents <= 0 or country not in COUNTRIES:
                raise PermanentError(f"row {number} is invalid: {line.strip()}")
    ctx.validated = True
    return ctx.data_size


def log_summary(ctx: EtlContext) -> str:
    """Write a human-readable audit line beside the data."""
    line = f"{ctx.data_size} rows transformed, {ctx.rejected} rejected\n"
    Path(ctx.workdir, "audit.log").write_text(line)
    return line.strip()


_load_attempts: dict[str, int] = defaultdict(int)
_load_lock = threading.Lock()


def load(ctx: EtlContext) -> int:
    """Insert into SQLite; fails ``fail_times`` times first, like a busy database."""
    with _load_lock:
        _load_attempts[ctx.workdir] += 1
        attempt = _load_attempts[ctx.workdir]
    if attempt <= ctx.fail_times:
        raise TemporaryError(f"database is locked (simulated, attempt {attempt})")
    with sqlite3.connect(Path(ctx.workdir, "warehouse.db")) as db:
        db.execute("DROP TABLE IF EXISTS sales")
        db.execute("CREATE TABLE sales (id INTEGER, country TEXT, cents INTEGER, sold_at INTEGER)")
        with Path(ctx.workdir, "transformed.jsonl").open() as lines:
            db.executemany("INSERT INTO sales VALUES (?, ?, ?, ?)", (json.loads(x) for x in lines))
        (ctx.loaded,) = db.execute("SELECT COUNT(*) FROM sales").fetchone()
    return ctx.loaded


def retry_policy(initial_delay: float = 1.0) -> RetryPolicy:
    """3 attempts, ``initial_delay`` then x2 up to 30 s, temporary errors only."""
    return RetryPolicy(
        max_attempts=3,
        backoff=Exponential(initial=initial_delay, multiplier=2, max=30),
        retry_on=(TemporaryError,),
    )


def build_pipeline(retry: RetryPolicy) -> Workflow[EtlContext, int]:
    """The seed design's pipeline, composed."""
    return (
        task(extract)
        .then(task(transform))
        .then(task(aggregate).when(lambda ctx: ctx.data_size > 1000, skip=True))
        .then(task(validate).parallel(task(log_summary, name="log")))
        .then(task(load).retry(retry))
        .named("etl")
    )


def workflows() -> list[Workflow[Any, Any]]:
    """What ``actorflow resume RUN_ID --app examples.etl`` can resume."""
    return [build_pipeline(retry_policy())]


def submitted_context(value: Any) -> EtlContext:
    """A run's context from the JSON a client submits (``actorflow submit etl --ctx ...``).

    ``{"workdir": DIR, "source": CSV}`` runs on an existing file;
    ``{"workdir": DIR, "rows": N}`` first generates N rows into ``DIR/sales.csv``.
    ``fail_times`` (default 1) is how often the load step fails before it works.
    """
    if not isinstance(value, dict) or not isinstance(value.get("workdir"), str):
        raise ValueError(f'the etl context needs {{"workdir": DIR, ...}}, got {value!r}')
    workdir = Path(value["workdir"])
    source = value.get("source")
    if source is None:
        workdir.mkdir(parents=True, exist_ok=True)
        source = str(workdir / "sales.csv")
        generate_dataset(Path(source), int(value.get("rows", 10_000)))
    return EtlContext(str(workdir), str(source), fail_times=int(value.get("fail_times", 1)))


def register(system: ActorSystem) -> None:
    """Called by ``actorflow node --app examples.etl``: submitted JSON becomes an EtlContext."""
    for workflow in workflows():
        system.register_workflow(workflow, context=submitted_context)


def summary(handle: RunHandle[Any]) -> str:
    rows = [f"  {'step':<10} {'state':<10} {'attempts':>8} {'duration':>10}"]
    for step in handle.steps():
        state = "Skipped" if step.skipped else str(step.state)
        duration = "-" if step.duration is None else f"{step.duration:.3f}s"
        rows.append(f"  {step.step:<10} {state:<10} {step.attempts:>8} {duration:>10}")
    return "\n".join(rows)


def run_etl(
    workdir: Path,
    rows: int,
    *,
    initial_delay: float = 1.0,
    fail_times: int = 1,
    out: Any = None,
    store: CheckpointStore | None = None,
) -> tuple[RunHandle[int], EtlContext]:
    """Generate the data, run the pipeline, wait for it; returns the handle and context."""
    out = out or sys.stdout
    source = workdir / "sales.csv"
    generate_dataset(source, rows)
    ctx = EtlContext(str(workdir), str(source), fail_times=fail_times)
    pipeline = build_pipeline(retry_policy(initial_delay))
    with ActorSystem("etl", store=store, checkpoint=CheckpointStrategy.AFTER_EACH_STEP) as system:
        handle = system.run(pipeline, ctx, observers=[ProgressObserver(out)])
        try:
            handle.result(timeout=300)
        finally:
            print(summary(handle), file=out)
    return handle, ctx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows to generate (100000)")
    parser.add_argument("--initial-delay", type=float, default=1.0, help="first backoff, s")
    parser.add_argument("--fail-times", type=int, default=1, help="simulated load failures")
    parser.add_argument("--workdir", type=Path, help="where to write (a temp dir by default)")
    parser.add_argument("--db", type=Path, help="checkpoint database (./.actorflow/state.db)")
    args = parser.parse_args(argv)
    if args.rows < 0:
        parser.error(f"--rows must be >= 0, got {args.rows}")
    with tempfile.TemporaryDirectory(prefix="actorflow-etl-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"ETL of {args.rows} generated rows in {workdir}")
        try:
            store = SQLiteStore(args.db) if args.db else None
            handle, ctx = run_etl(
                workdir,
                args.rows,
                initial_delay=args.initial_delay,
                fail_times=args.fail_times,
                store=store,
            )
        except Exception as exc:  # noqa: BLE001 - the summary above says which step
            print(f"run failed: {type(exc).__name__}: {exc}")
            return 1
        print(
            f"run {handle.id}: {handle.state}; loaded {ctx.loaded} rows, "
            f"rejected {ctx.rejected}; totals by country (cents): {ctx.totals}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
