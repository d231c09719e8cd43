"""map_items on real actor systems: order, keys, the running bound, failure policies, resume."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    Canceled,
    CheckpointStrategy,
    ItemsFailed,
    MemoryStore,
    NodeState,
    PermanentError,
    RetryPolicy,
    SQLiteStore,
    TemporaryError,
    current_step,
    map_items,
    task,
)
from runtime import events as ev
from tests.support import EventRecorder

pytestmark = pytest.mark.timeout(30)
AFTER_EACH = CheckpointStrategy.AFTER_EACH_STEP


def items_of(ctx: dict[str, Any]) -> list[Any]:
    return list(ctx["items"])


def times_ten(item: int) -> int:
    return item * 10


def started_steps(recorder: EventRecorder) -> set[str | None]:
    return {e.step for e in recorder.events if isinstance(e, ev.Started)}


def test_outputs_are_in_item_order_whatever_order_the_items_finish(system: ActorSystem) -> None:
    finished: list[int] = []
    cond = threading.Condition()

    def last_first(item: int) -> int:  # item i ends only after every later item ended
        with cond:
            later = set(range(item + 1, 6))
            assert cond.wait_for(lambda: later <= set(finished), timeout=10), finished
            finished.append(item)
            cond.notify_all()
        return item * 10

    handle = system.run(map_items(items_of, last_first), {"items": range(6)})
    assert handle.result(10) == [0, 10, 20, 30, 40, 50]
    assert finished == [5, 4, 3, 2, 1, 0]


def test_the_items_are_read_from_the_context_when_the_map_starts(system: ActorSystem) -> None:
    def load(ctx: dict[str, Any]) -> None:
        ctx["items"] = list(range(ctx["count"]))

    wf = task(load).then(map_items(items_of, times_ten))
    assert system.run(wf, {"count": 3}).result(5) == [0, 10, 20]
    handle = system.run(wf, {"count": 5})
    assert handle.result(5) == [0, 10, 20, 30, 40]
    assert [s.step for s in handle.steps()] == ["load"] + [f"times_ten[{i}]" for i in range(5)]


def test_each_item_runs_on_its_own_copy_and_the_context_goes_on_unchanged(
    system: ActorSystem,
) -> None:
    def fetch(row: dict[str, Any]) -> str:
        row["fetched"] = True  # a change to the item, not to ctx
        return str(row["url"])

    def parse(row: dict[str, Any]) -> int:
        assert row["fetched"]  # the same item's context flows through its own chain
        return len(row["url"])

    def after(ctx: dict[str, Any]) -> list[Any]:
        return list(ctx["items"])

    rows = [{"url": "a"}, {"url": "bb"}, {"url": "ccc"}]
    wf = map_items(items_of, task(fetch).then(task(parse))).then(task(after))
    handle = system.run(wf, {"items": rows})
    assert handle.result(5) == [{"url": "a"}, {"url": "bb"}, {"url": "ccc"}]
    assert rows == [{"url": "a"}, {"url": "bb"}, {"url": "ccc"}]
    keys = {s.step for s in handle.steps()}
    assert keys == {"fetch[0]", "fetch[1]", "fetch[2]", "parse[0]", "parse[1]", "parse[2]", "after"}


def test_a_map_inside_a_map_keys_its_steps_by_both_indexes(system: ActorSystem) -> None:
    def cells(row: list[int]) -> list[int]:
        return row

    wf = map_items(items_of, map_items(cells, times_ten))
    handle = system.run(wf, {"items": [[1, 2], [3]]})
    assert handle.result(5) == [[10, 20], [30]]
    assert sorted(s.step for s in handle.steps()) == [
        "times_ten[0][0]",
        "times_ten[0][1]",
        "times_ten[1][0]",
    ]


def test_an_empty_sequence_outputs_an_empty_list_and_runs_no_step(system: ActorSystem) -> None:
    handle = system.run(map_items(items_of, times_ten).then(lambda ctx: "next"), {"items": []})
    assert handle.result(5) == "next"
    assert [s.step for s in handle.steps()] == ["lambda"]
    assert system.run(map_items(items_of, times_ten), {"items": ()}).result(5) == []


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (lambda ctx: ctx["missing"], "items of 'map\\(times_ten\\)' raised KeyError"),
        (lambda ctx: "abc", "expected a sequence of items, got str"),
        (lambda ctx: None, "NoneType"),
    ],
)
def test_items_that_cannot_be_read_fail_the_run_for_good(
    system: ActorSystem, items: Any, message: str
) -> None:
    with pytest.raises(PermanentError, match=message) as failure:
        system.run(map_items(items, times_ten), {}).result(5)
    assert failure.value.__cause__ is not None


class Running:
    """Counts how many item steps run at once; the first ``hold`` wait until all are in."""

    def __init__(self, hold: int) -> None:
        self.hold = hold
        self.active = self.peak = self.ran = 0
        self._cond = threading.Condition()

    def step(self, item: int) -> int:
        with self._cond:
            self.active += 1
            self.ran += 1
            self.peak = max(self.peak, self.active)
            self._cond.notify_all()
            # The first `hold` items stay in until `hold` run at once: the bound is reached.
            if not self._cond.wait_for(lambda: self.ran >= self.hold, timeout=10):
                raise AssertionError(f"only {self.ran} started")
            self.active -= 1
        return item


def test_two_thousand_items_never_run_more_than_max_running_steps_at_once() -> None:
    running = Running(hold=8)
    with ActorSystem("map-cap", max_running_steps=8) as system:
        handle = system.run(map_items(items_of, running.step), {"items": range(2000)})
        assert handle.result(20) == list(range(2000))
        assert system.nodes.spawned <= 8  # node actors (threads) are reused, never 2000
    assert (running.peak, running.ran) == (8, 2000)


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


@pytest.mark.slow
def test_ten_thousand_items_run_with_a_shallow_coordinator_stack() -> None:
    """Every item's outcome reaches the map from a fresh message, never down a chain of calls."""
    depths: list[int] = []

    def after_item(item: int, output: int) -> int:  # runs on the coordinator
        depths.append(_stack_depth())
        return output

    per_item = task(times_ten).nested(lambda item: item, after_item)
    with ActorSystem("map-10k") as system:
        handle = system.run(map_items(items_of, per_item), {"items": range(10_000)})
        assert handle.result(60) == [i * 10 for i in range(10_000)]
        assert system.nodes.spawned <= 256  # the default max_running_steps
    assert len(depths) == 10_000
    assert max(depths) < 60 and max(depths) - min(depths) <= 2, (min(depths), max(depths))


def test_stop_fails_with_the_first_error_and_cancels_the_other_items(
    recorder: EventRecorder,
) -> None:
    release = threading.Event()

    def item_step(item: int) -> int:
        if item == 1:
            raise PermanentError("item 1 is broken")
        release.wait(10)  # until canceled (the test releases it at the end)
        return item

    wf = map_items(items_of, task(item_step, name="s"))
    with ActorSystem("map-stop", max_running_steps=3) as system:
        handle = system.run(wf, {"items": range(10)}, observers=[recorder])
        with pytest.raises(PermanentError, match="item 1 is broken"):
            handle.result(10)
        release.set()
        states = {s.step: s.state for s in handle.steps()}
    assert states == {
        "s[0]": NodeState.CANCELED,
        "s[1]": NodeState.FAILED,
        "s[2]": NodeState.CANCELED,
    }
    # s[3]... never started (s[2] may be canceled before its node actor runs it).
    assert started_steps(recorder) <= {None, "s[0]", "s[1]", "s[2]"}


def test_collect_runs_every_item_then_fails_naming_each_failed_item(system: ActorSystem) -> None:
    def item_step(item: int) -> int:
        if item == 1:
            raise PermanentError("one is broken")
        if item == 4:
            raise ValueError("four is odd")
        return item * 10

    wf = map_items(items_of, task(item_step, name="s"), on_failure="collect", name="fetch-all")
    handle = system.run(wf, {"items": range(6)})
    with pytest.raises(ItemsFailed) as failure:
        handle.result(10)
    error = failure.value
    assert str(error) == (
        "fetch-all: 2 of 6 items failed: [1] PermanentError: one is broken; "
        "[4] ValueError: four is odd"
    )
    assert sorted(error.failures) == [1, 4]
    assert isinstance(error.failures[4], ValueError)
    assert error.outputs == [0, None, 20, 30, None, 50]
    assert sum(s.state is NodeState.COMPLETED for s in handle.steps()) == 4


def test_collect_lists_the_first_ten_failures_and_counts_the_rest(system: ActorSystem) -> None:
    def broken(item: int) -> int:
        raise PermanentError(f"no {item}")

    handle = system.run(map_items(items_of, broken, on_failure="collect"), {"items": range(25)})
    with pytest.raises(ItemsFailed, match=r"25 of 25 items failed: \[0\] .*\[9\] .*; and 15 more$"):
        handle.result(10)


def test_a_flaky_item_is_retried_by_its_policy_alone(recorder: EventRecorder) -> None:
    calls: dict[int, int] = {}

    def flaky(item: int) -> int:
        calls[item] = calls.get(item, 0) + 1
        if item == 2 and calls[item] == 1:
            raise TemporaryError("item 2 hiccups once")
        return item

    wf = map_items(items_of, task(flaky, retry=RetryPolicy(max_attempts=3)))
    with ActorSystem("map-retry") as system:
        handle = system.run(wf, {"items": range(5)}, observers=[recorder])
        assert handle.result(10) == [0, 1, 2, 3, 4]
        attempts = {s.step: s.attempts for s in handle.steps()}
    assert attempts == {"flaky[0]": 1, "flaky[1]": 1, "flaky[2]": 2, "flaky[3]": 1, "flaky[4]": 1}
    assert [e.step for e in recorder.events if isinstance(e, ev.Retrying)] == ["flaky[2]"]


class Ledger:
    """Which items' bodies ran, per run; ``broken`` items raise."""

    def __init__(self) -> None:
        self.ran: list[int] = []
        self.broken: set[int] = set()

    def step(self, item: int) -> int:
        self.ran.append(item)
        if item in self.broken:
            raise PermanentError(f"item {item} is broken")
        return item * 10


@pytest.mark.parametrize("on_failure", ["stop", "collect"])
@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_a_resumed_map_does_not_rerun_the_items_that_completed(
    tmp_path: Path, on_failure: Any, store_kind: str
) -> None:
    ledger = Ledger()
    ledger.broken = {3, 7}
    wf = map_items(items_of, task(ledger.step, name="item"), on_failure=on_failure).named("m")
    store = MemoryStore() if store_kind == "memory" else SQLiteStore(tmp_path / "runs.db")
    # One step at a time, in item order: which items completed before the failure is known.
    with (
        store,
        ActorSystem("map-ck", store=store, checkpoint=AFTER_EACH, max_running_steps=1) as system,
    ):
        handle = system.run(wf, {"items": list(range(10))})
        with pytest.raises(PermanentError if on_failure == "stop" else ItemsFailed):
            handle.result(10)
        first = list(ledger.ran)
        ledger.ran.clear()
        ledger.broken.clear()
        resumed = system.resume(handle.id, wf)
        assert resumed.result(10) == [i * 10 for i in range(10)]
        replayed = sorted(int(s.step[5:-1]) for s in resumed.steps() if s.resumed)
    if on_failure == "stop":
        assert first == [0, 1, 2, 3]  # 4... were queued, never started
        assert ledger.ran == [3, 4, 5, 6, 7, 8, 9]
    else:
        assert first == list(range(10))
        assert ledger.ran == [3, 7]
    assert replayed == sorted(set(range(10)) - set(ledger.ran))


def test_canceling_the_run_cancels_running_items_and_never_starts_queued_ones(
    recorder: EventRecorder,
) -> None:
    release = threading.Event()

    def held(item: int) -> int:
        release.wait(10)
        return item

    with ActorSystem("map-cancel", max_running_steps=2) as system:
        handle = system.run(map_items(items_of, held), {"items": range(6)}, observers=[recorder])
        for step in ("held[0]", "held[1]"):
            recorder.wait_for(lambda e, s=step: isinstance(e, ev.Started) and e.step == s)
        handle.cancel()
        with pytest.raises(Canceled):
            handle.result(10)
        release.set()
    assert started_steps(recorder) == {None, "held[0]", "held[1]"}
    canceled = {e.step for e in recorder.events if isinstance(e, ev.Canceled)}
    assert canceled == {None, "held[0]", "held[1]"}


def test_an_item_step_reads_its_own_step_key(system: ActorSystem) -> None:
    def whoami(item: str) -> str:
        return f"{item}@{current_step().step}"

    assert system.run(map_items(items_of, whoami), {"items": ["a", "b"]}).result(5) == [
        "a@whoami[0]",
        "b@whoami[1]",
    ]
