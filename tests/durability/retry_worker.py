"""A run whose one step fails once and is retried after a delay; for the stale-owner test.

``python -m tests.durability.retry_worker DB RUN_ID LEASE DELAY`` starts run
RUN_ID of ``flaky`` in the SQLite store DB with LEASE seconds of lease. The
task prints ``ATTEMPT n`` each time it runs; attempt 1 raises a
``TemporaryError``, retried after DELAY seconds. The process prints
``RETRYING`` when the retry is scheduled (the test stops it then), and the
run's end as ``RESULT <value>`` or ``ERROR <Type> <message>``.

The store is a database far away: each lease renewal takes ``RENEW_SECONDS``,
time enough for a step already started to run before its coordinator learns
the run was lost.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from runtime import (
    ActorSystem,
    CheckpointStrategy,
    Fixed,
    RetryPolicy,
    SQLiteStore,
    TemporaryError,
    current_step,
    task,
)
from runtime.events import Event, Retrying

RENEW_SECONDS = 0.5


class FarAwayStore(SQLiteStore):
    def renew(self, run_id: str, *, epoch: int, lease: float) -> None:
        time.sleep(RENEW_SECONDS)  # the round trip to a distant database
        super().renew(run_id, epoch=epoch, lease=lease)


def flaky(ctx: Any) -> str:
    attempt = current_step().attempt
    print(f"ATTEMPT {attempt}", flush=True)
    if attempt == 1:
        raise TemporaryError("the first attempt fails")
    return "done"


class SayRetrying:
    def on_event(self, event: Event) -> None:
        if isinstance(event, Retrying):
            print("RETRYING", flush=True)


def main() -> None:
    db, run_id, lease, delay = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    workflow = task(flaky).retry(RetryPolicy(max_attempts=3, backoff=Fixed(delay))).named("flaky")
    checkpoint = CheckpointStrategy.AFTER_EACH_STEP
    store = FarAwayStore(db)
    with ActorSystem("worker", store=store, lease=lease, checkpoint=checkpoint) as system:
        handle = system.run(workflow, {}, run_id=run_id, observers=[SayRetrying()])
        try:
            print(f"RESULT {handle.result(timeout=120)}", flush=True)
        except Exception as exc:
            print(f"ERROR {type(exc).__name__} {exc}", flush=True)


if __name__ == "__main__":
    main()
