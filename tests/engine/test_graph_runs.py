"""Graphs on real actor systems: start order, outputs, contexts, failure, resume, retry, cap.

Orders are proved with ``threading.Event`` gates (a task waits, bounded, for
another to have started), never with sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    CheckpointStrategy,
    Fixed,
    GraphBuilder,
    MemoryStore,
    NodeState,
    PermanentError,
    PersistenceError,
    RetryPolicy,
    TemporaryError,
    Workflow,
    current_step,
    graph,
    parallel,
    task,
)
from runtime import events as ev
from tests.support import EventRecorder, wait_until

pytestmark = pytest.mark.timeout(30)
AFTER_EACH = CheckpointStrategy.AFTER_EACH_STEP
Ctx = dict[str, Any]


class Trail:
    """Tasks that log when they start and end, set a key of the context, and may wait."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[str] = []
        self.started = {name: threading.Event() for name in "abcdef"}
        self.ended = {name: threading.Event() for name in "abcdef"}
        self.broken: set[str] = set()
        self.waits: dict[str, Callable[[], None]] = {}
        self.saw: dict[str, Ctx] = {}  # the context each step last started on

    def step(self, name: str) -> Workflow[Ctx, str]:
        def body(ctx: Ctx) -> str:
            with self.lock:
                self.log.append(f"start {name}")
                self.saw[name] = dict(ctx)
            self.started[name].set()
            if name in self.waits:
                self.waits[name]()
            if name in self.broken:
                raise PermanentError(f"{name} is broken")
            ctx[name] = sorted(k for k in ctx if len(k) == 1)  # which changes it saw
            with self.lock:
                self.log.append(f"end {name}")
            self.ended[name].set()
            return name.upper()

        return task(body, name=name)

    def ran(self) -> list[str]:
        with self.lock:
            return [entry.split()[1] for entry in self.log if entry.startswith("start")]


def crawl(trail: Trail) -> Workflow[Ctx, dict[str, Any]]:
    """c after a and b, d after a only."""
    g: GraphBuilder[Ctx] = graph("crawl")
    a = g.add(trail.step("a"))
    b = g.add(trail.step("b"))
    g.add(trail.step("c"), after=[a, b])
    g.add(trail.step("d"), after=[a])
    return g.build()


def must(event: threading.Event, what: str) -> None:
    if not event.wait(10):
        raise AssertionError(f"{what} did not happen within 10 s")


def test_a_part_starts_once_its_own_dependencies_completed(system: ActorSystem) -> None:
    trail = Trail()
    trail.waits["b"] = lambda: must(trail.started["d"], "d started while b runs")

    def c_checks() -> None:
        assert trail.ended["a"].is_set() and trail.ended["b"].is_set(), trail.log

    trail.waits["c"] = c_checks
    ctx: Ctx = {"seed": 1}
    outputs = system.run(crawl(trail), ctx).result(10)
    assert outputs == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert list(outputs) == ["a", "b", "c", "d"]  # in the order of add
    assert trail.log.index("start d") < trail.log.index("end b")
    assert trail.log.index("start c") > max(trail.log.index("end a"), trail.log.index("end b"))
    # Each part saw the changes of its ancestors only; the graph ends with all of them.
    assert ctx == {"seed": 1, "a": [], "b": [], "c": ["a", "b"], "d": ["a"]}


def test_contexts_follow_the_graph_order_and_a_change_back_is_a_change(
    system: ActorSystem,
) -> None:
    def setter(key: str, value: Any) -> Workflow[Ctx, Any]:
        def body(ctx: Ctx) -> Any:
            ctx[key] = value
            return dict(ctx)

        return task(body, name=f"{key}_{value}")

    g: GraphBuilder[Ctx] = graph("ctx")
    one = g.add(setter("x", 1))
    back = g.add(setter("x", 0), after=[one])  # sets the starting value again
    other = g.add(setter("y", 1))
    late = g.add(setter("y", 2))  # not related to `other`: the later added wins
    seen = g.add(task(lambda ctx: dict(ctx), name="seen"), after=[one, back, other, late])
    ctx: Ctx = {"x": 0, "y": 0}
    outputs = system.run(g.build(), ctx).result(10)
    assert outputs[seen.name] == {"x": 0, "y": 2}
    assert ctx == {"x": 0, "y": 2}


def test_the_first_failure_cancels_running_parts_and_starts_no_more(system: ActorSystem) -> None:
    trail, recorder = Trail(), EventRecorder()
    noticed = threading.Event()

    def cooperative() -> None:
        wait_until(lambda: current_step().cancel_requested, timeout=10)
        noticed.set()

    trail.waits["b"] = cooperative
    trail.waits["a"] = lambda: must(trail.started["b"], "b started")
    trail.broken.add("a")
    handle = system.run(crawl(trail), {}, observers=[recorder])
    with pytest.raises(PermanentError, match="a is broken"):
        handle.result(10)
    must(noticed, "b was asked to stop")
    recorder.wait_for(lambda e: getattr(e, "step", None) == "b" and isinstance(e, ev.Canceled))
    assert sorted(trail.ran()) == ["a", "b"]  # c and d never started
    states = {s.step: s.state for s in handle.steps()}
    assert states == {"a": NodeState.FAILED, "b": NodeState.CANCELED}


def test_a_resumed_graph_reruns_only_what_did_not_complete() -> None:
    trail, store = Trail(), MemoryStore()
    g: GraphBuilder[Ctx] = graph("resumable")
    a = g.add(trail.step("a"))
    b = g.add(trail.step("b"))
    c = g.add(trail.step("c"), after=[a, b])
    d = g.add(trail.step("d"), after=[a])
    g.add(trail.step("e"), after=[c, d])
    wf = g.build()
    trail.broken.add("e")
    with ActorSystem("graph-ck", store=store, checkpoint=AFTER_EACH) as system:
        handle = system.run(wf, {"seed": 1})
        with pytest.raises(PermanentError, match="e is broken"):
            handle.result(10)
        assert sorted(trail.ran()) == ["a", "b", "c", "d", "e"]
        trail.broken.clear()
        resumed = system.resume(handle.id, wf)
        assert resumed.result(10) == {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}
    assert sorted(trail.ran()) == ["a", "b", "c", "d", "e", "e"]
    reports = {s.step: s for s in resumed.steps()}
    assert {k: r.resumed for k, r in reports.items()} == {
        "a": True,
        "b": True,
        "c": True,
        "d": True,
        "e": False,
    }
    # e ran on the recorded contexts of the parts before it.
    assert trail.saw["e"] == {"seed": 1, "a": [], "b": [], "c": ["a", "b"], "d": ["a"]}


def test_resuming_with_changed_dependencies_is_refused() -> None:
    trail, store = Trail(), MemoryStore()
    trail.broken.add("c")
    with ActorSystem("graph-shape", store=store, checkpoint=AFTER_EACH) as system:
        handle = system.run(crawl(trail), {})
        with pytest.raises(PermanentError):
            handle.result(10)
        g: GraphBuilder[Ctx] = graph("crawl")
        a = g.add(trail.step("a"))
        b = g.add(trail.step("b"))
        g.add(trail.step("c"), after=[a, b])
        g.add(trail.step("d"), after=[b])  # was after a
        with pytest.raises(PersistenceError, match="structure changed"):
            system.resume(handle.id, g.build())


def test_a_part_retries_by_its_own_policy_while_the_others_run_once(system: ActorSystem) -> None:
    trail, calls = Trail(), {"n": 0}

    def flaky(ctx: Ctx) -> int:
        calls["n"] += 1
        if calls["n"] < 3:
            raise TemporaryError(f"call {calls['n']}")
        return calls["n"]

    g: GraphBuilder[Ctx] = graph("retrying")
    a = g.add(trail.step("a"))
    flaky_part = g.add(task(flaky, retry=RetryPolicy(3, Fixed(0))), after=[a])
    g.add(trail.step("c"), after=[flaky_part])
    handle = system.run(g.build(), {})
    assert handle.result(10) == {"a": "A", "flaky": 3, "c": "C"}
    assert {s.step: s.attempts for s in handle.steps()} == {"a": 1, "flaky": 3, "c": 1}
    assert trail.ran() == ["a", "c"]


def test_ready_parts_queue_at_the_cap_in_the_order_they_became_ready() -> None:
    trail = Trail()
    g: GraphBuilder[Ctx] = graph("capped")
    a = g.add(trail.step("a"))
    for name in "dcb":
        g.add(trail.step(name), after=[a])
    with ActorSystem("graph-cap", max_running_steps=1) as system:
        assert list(system.run(g.build(), {}).result(10)) == ["a", "d", "c", "b"]
    assert trail.ran() == ["a", "d", "c", "b"]


def test_graphs_compose_with_then_parallel_and_other_graphs(system: ActorSystem) -> None:
    inner: GraphBuilder[Ctx] = graph("inner")
    x = inner.add(task(lambda ctx: 1, name="x"))
    inner.add(task(lambda ctx: 2, name="y"), after=[x])
    outer: GraphBuilder[Ctx] = graph("outer")
    first = outer.add(inner.build())
    outer.add(parallel(task(lambda ctx: 3, name="p"), task(lambda ctx: 4, name="q")), after=first)
    wf = task(lambda ctx: 0, name="before").then(outer.build())
    assert system.run(wf, {}).result(10) == {"inner": {"x": 1, "y": 2}, "(p|q)": (3, 4)}


def test_parts_that_end_at_once_do_not_recurse(system: ActorSystem) -> None:
    g: GraphBuilder[Ctx] = graph("skips")
    previous = g.add(task(lambda ctx: None, name="s0").when(lambda ctx: False, skip=True))
    for i in range(1, 2000):
        part = task(lambda ctx: None, name=f"s{i}").when(lambda ctx: False, skip=True)
        previous = g.add(part, after=[previous], name=f"s{i}")
    outputs = system.run(g.build(), {}).result(20)
    assert len(outputs) == 2000 and set(outputs.values()) == {None}
