"""Failed(final=False) under a composite retry: the step's story must still end."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import ActorSystem, Fixed, PermanentError, RetryPolicy, TemporaryError, parallel, task
from runtime import events as ev
from tests.support import EventRecorder

pytestmark = pytest.mark.timeout(30)


def test_a_non_final_failure_whose_outer_retry_is_canceled_gets_a_terminal_event() -> None:
    """``parallel((a.then(b)).retry(...), c)``: a fails (not final: the outer retry will
    rerun it after 30 s), then c fails and cancels the branch during that backoff. An
    observer of step a must not be left with only ``Failed(final=False)``."""
    recorder = EventRecorder()

    def a(ctx: Any) -> None:
        raise TemporaryError("a broke")

    def c(ctx: Any) -> None:
        recorder.wait_for(lambda e: isinstance(e, ev.Failed) and e.step == "a", timeout=10)
        raise PermanentError("c broke")

    retried = task(a).then(task(lambda ctx: None, name="b")).retry(RetryPolicy(3, Fixed(30)))
    with ActorSystem("final") as system:
        handle = system.run(parallel(retried, task(c)), {}, observers=[recorder])
        with pytest.raises(PermanentError):
            handle.result(timeout=10)
    about_a = [
        (type(e).__name__, getattr(e, "final", None))
        for e in recorder.events
        if getattr(e, "step", None) == "a"
    ]
    assert about_a[-1] in {("Failed", True), ("Canceled", None)}, about_a
