"""Adaptive placement strategies and predictive steps."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    CompositionError,
    Fastest,
    LeastLoaded,
    MemoPredictor,
    NodeLoad,
    PermanentError,
    RoundRobin,
    parallel,
    task,
)
from runtime import events as ev
from tests.support import EventRecorder

pytestmark = pytest.mark.timeout(60)


def test_each_placement_strategy_chooses_as_documented() -> None:
    loads = [
        NodeLoad("a", in_flight=2, completed=5, mean_duration=0.5),
        NodeLoad("b", in_flight=0, completed=9, mean_duration=0.1),
        NodeLoad("c", in_flight=0, completed=1, mean_duration=None),
    ]
    assert LeastLoaded().choose("s", loads) == "c"  # idle, and fewer done than b
    assert Fastest().choose("s", loads) == "c"  # never measured: tried first
    assert Fastest().choose("s", loads[:2]) == "b"
    robin = RoundRobin()
    assert [robin.choose("s", loads) for _ in range(4)] == ["a", "b", "c", "a"]


def test_memo_predictor_grows_confident_only_with_agreeing_evidence() -> None:
    memo = MemoPredictor(key=lambda ctx: ctx["kind"])
    assert memo.predict({"kind": "x"}) is None
    memo.observe({"kind": "x"}, 42)
    first = memo.predict({"kind": "x"})
    assert first is not None and (first.output, first.confidence) == (42, 0.5)
    for _ in range(8):
        memo.observe({"kind": "x"}, 42)
    assert memo.predict({"kind": "x"}).confidence == pytest.approx(0.9)  # type: ignore[union-attr]
    memo.observe({"kind": "x"}, 7)
    assert memo.predict({"kind": "x"}).confidence == pytest.approx(0.9)  # type: ignore[union-attr]


def test_a_predictive_step_is_skipped_once_the_predictor_is_sure_enough(
    system: ActorSystem,
) -> None:
    calls = {"n": 0}

    def expensive(ctx: dict[str, Any]) -> int:
        calls["n"] += 1
        return ctx["n"] * 2

    memo = MemoPredictor(key=lambda ctx: ctx["n"])
    wf = task(expensive).predictive(memo, threshold=0.75)
    outputs = [system.run(wf, {"n": 21}).result(5) for _ in range(5)]
    assert outputs == [42] * 5
    assert calls["n"] == 3  # confidence 0.5, 0.67, then 0.75: the last two are predicted


def test_a_raising_predictor_fails_the_run_with_the_cause(system: ActorSystem) -> None:
    class Broken:
        def predict(self, ctx: Any) -> None:
            raise KeyError("model missing")

        def observe(self, ctx: Any, output: Any) -> None:
            raise AssertionError("unreachable")

    with pytest.raises(PermanentError, match="predictor") as info:
        system.run(task(lambda c: 1).predictive(Broken()), {}).result(5)
    assert isinstance(info.value.__cause__, KeyError)


def test_adaptive_and_predictive_reject_bad_arguments() -> None:
    with pytest.raises(CompositionError, match="choose"):
        task(lambda c: 1).adaptive(object())  # type: ignore[arg-type]
    with pytest.raises(CompositionError, match="threshold"):
        task(lambda c: 1).predictive(MemoPredictor(key=id), threshold=1.5)


def hold(ctx: dict[str, Any]) -> str:
    """A remote step that takes a moment, so several are in flight at once."""
    time.sleep(0.2)
    return "held"


@pytest.fixture
def three_nodes() -> Iterator[tuple[ActorSystem, ActorSystem, ActorSystem]]:
    wf = task(hold)
    coordinator = ActorSystem("coord", listen="tcp://127.0.0.1:0", plaintext=True)
    joined = EventRecorder()
    coordinator.events.subscribe(joined, lambda e: isinstance(e, ev.NodeUp))
    seed = [str(coordinator.address)]
    workers = [
        ActorSystem(name, listen="tcp://127.0.0.1:0", join=seed, plaintext=True, workflows=[wf])
        for name in ("w1", "w2")
    ]
    for name in ("w1", "w2"):
        joined.wait_for(lambda e, name=name: getattr(e, "node", None) == name, timeout=10)
    yield coordinator, workers[0], workers[1]
    for system in (*workers, coordinator):
        system.shutdown()


def test_least_loaded_spreads_parallel_steps_over_the_idle_workers(
    three_nodes: tuple[ActorSystem, ActorSystem, ActorSystem],
) -> None:
    coordinator, _, _ = three_nodes
    wf = parallel(*[task(hold, name=f"h{i}") for i in range(4)]).adaptive(LeastLoaded())
    handle = coordinator.run(wf, {})
    assert handle.result(20) == ("held",) * 4
    placed = sorted(step.node for step in handle.steps())
    assert placed == ["w1", "w1", "w2", "w2"]


def test_a_strategy_that_chooses_no_candidate_fails_the_step(
    three_nodes: tuple[ActorSystem, ActorSystem, ActorSystem],
) -> None:
    class Nowhere:
        def choose(self, step: str, candidates: Any) -> str:
            return "mars"

    coordinator, _, _ = three_nodes
    with pytest.raises(PermanentError, match="mars"):
        coordinator.run(task(hold).adaptive(Nowhere()), {}).result(10)
