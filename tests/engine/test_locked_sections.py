"""``wf.locked(name, lease=...)``: a workflow part run while holding a cluster lock."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest

from runtime import ActorSystem, current_step, parallel, task

pytestmark = pytest.mark.timeout(30)


def test_locked_sections_of_two_runs_never_overlap_and_see_their_token(
    system: ActorSystem,
) -> None:
    intervals: list[tuple[float, float, int]] = []
    lock = threading.Lock()

    def critical(ctx: Any) -> int:
        start = time.monotonic()
        token = current_step().fencing_tokens["shared"]
        time.sleep(0.05)  # the work done while holding the lock
        with lock:
            intervals.append((start, time.monotonic(), token))
        return token

    wf = task(critical).locked("shared", lease=5)
    tokens = system.run(parallel(wf, wf, wf), {}).result(10)
    assert len(set(tokens)) == 3
    ordered = sorted(intervals)
    for (_, end, _), (start, _, _) in itertools.pairwise(ordered):
        assert start >= end  # one after the other
    assert [t for _, _, t in ordered] == sorted(t for _, _, t in ordered)


def test_a_locked_section_releases_the_lock_when_it_fails(system: ActorSystem) -> None:
    def boom(ctx: Any) -> None:
        raise ValueError("inside the lock")

    with pytest.raises(ValueError, match="inside the lock"):
        system.run(task(boom).locked("x", lease=5), {}).result(5)
    system.lock("x", lease=5).acquire(timeout=1)  # free again
