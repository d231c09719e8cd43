"""The app the failover row's worker processes load (``actorflow node --app bench._failover_app``).

One step, ``hold``, that blocks until canceled or ``ctx["hold"]`` seconds pass,
so it is still running wherever it was placed when the bench kills that node.
"""

from __future__ import annotations

import os
from typing import Any

from runtime import Workflow, current_step, task


def hold(ctx: dict[str, Any]) -> str:
    """Block (cancelably) for ``ctx["hold"]`` seconds; return the node it ran on."""
    current_step().cancel_event.wait(float(ctx["hold"]))
    return os.environ.get("ACTORFLOW_BENCH_NODE", "?")


def workflows() -> list[Workflow[Any, Any]]:
    return [task(hold).named("bench-failover")]
