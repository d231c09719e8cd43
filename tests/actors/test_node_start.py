"""A ``Start`` whose context arrives encoded: the node actor decodes it on its own thread.

A remote step's context is decoded by the node actor that runs it, not by the
thread that received it; a context that does not decode fails the attempt
before it runs, with no transition (the step may be retried on the same node).
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import pytest

from actors import NodeActor, NodeState, RealClock, Start, StateChanged, StepResult

pytestmark = pytest.mark.timeout(30)


def test_a_start_with_a_decoder_runs_the_task_on_the_decoded_context() -> None:
    results: queue.Queue[StepResult] = queue.Queue()
    ref = NodeActor.start(
        "step",
        lambda ctx: ctx["n"] + 1,
        run_id="run-1",
        clock=RealClock(),
        emit=lambda event: None,
        report=results.put,
    )
    try:
        ref.tell(Start(b"41", decode=lambda data: {"n": int(data)}))
        result = results.get(timeout=10)
        assert (result.state, result.output, result.ctx) == (NodeState.COMPLETED, 42, {"n": 41})
    finally:
        ref.stop(timeout=10)


def test_a_context_that_does_not_decode_fails_the_attempt_before_it_runs() -> None:
    ran = threading.Event()
    events: list[Any] = []
    results: queue.Queue[StepResult] = queue.Queue()
    ref = NodeActor.start(
        "step",
        lambda ctx: ran.set(),
        run_id="run-1",
        clock=RealClock(),
        emit=events.append,
        report=results.put,
    )
    try:

        def undecodable(data: Any) -> Any:
            raise ValueError(f"cannot decode {data!r}")

        ref.tell(Start(b"\xc1", decode=undecodable))
        failed = results.get(timeout=10)
        assert failed.state is NodeState.FAILED
        assert str(failed.error) == "cannot decode b'\\xc1'"
        assert not ran.is_set() and events == []  # no transition, no Started: it never ran
        ref.tell(Start(None))  # a retry on the same node runs it: Pending -> Running
        assert results.get(timeout=10).state is NodeState.COMPLETED
        assert ran.is_set()
        assert [(e.old, e.new) for e in events if isinstance(e, StateChanged)] == [
            (NodeState.PENDING, NodeState.RUNNING),
            (NodeState.RUNNING, NodeState.COMPLETED),
        ]
    finally:
        ref.stop(timeout=10)
