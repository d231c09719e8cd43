"""The app the submit row's node loads (``actorflow node --app bench._submit_app``).

One step that returns the moment it started (``time.monotonic()``: one clock
for every process of the host on Linux), so the submitter can subtract the
moment it submitted.
"""

from __future__ import annotations

import time
from typing import Any

from runtime import Workflow, task


def stamp(ctx: Any) -> float:
    return time.monotonic()


def workflows() -> list[Workflow[Any, Any]]:
    return [task(stamp).named("bench-stamp")]
