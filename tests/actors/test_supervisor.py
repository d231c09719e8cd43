"""Supervision of long-lived actors: strategies, restart intensity, escalation."""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from runtime import (
    ActorSystem,
    ChildSpec,
    EscalationError,
    ManualClock,
    Restart,
    RestartIntensity,
    SupervisedActor,
    Supervisor,
    one_for_all,
    one_for_one,
    rest_for_one,
)

pytestmark = pytest.mark.timeout(30)


class Journal:
    """Records child starts; tests wait on it with a deadline."""

    def __init__(self) -> None:
        self.starts: list[str] = []
        self.cond = threading.Condition()

    def started(self, name: str) -> None:
        with self.cond:
            self.starts.append(name)
            self.cond.notify_all()

    def wait_starts(self, count: int, timeout: float = 5.0) -> list[str]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.starts) >= count, timeout), self.starts
            return list(self.starts)


class Worker(SupervisedActor):
    def __init__(self, name: str, journal: Journal, fail_on_start: bool = False) -> None:
        super().__init__()
        self.name, self.journal, self.fail_on_start = name, journal, fail_on_start

    def on_start(self) -> None:
        self.journal.started(self.name)
        if self.fail_on_start:
            raise RuntimeError(f"{self.name} cannot start")

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError(f"{self.name} crashed")
        if message == "quit":
            self.actor_ref.stop(block=False)
        return message


def specs(journal: Journal, names: str = "abc", **options: Any) -> list[ChildSpec]:
    return [ChildSpec(n, Worker, (n, journal), **options) for n in names]


def children(sup: pykka.ActorRef[Any]) -> dict[str, pykka.ActorRef[Any]]:
    return sup.ask("children", timeout=5)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [(one_for_one, "b"), (one_for_all, "abc"), (rest_for_one, "bc")],
    ids=["one_for_one", "one_for_all", "rest_for_one"],
)
def test_each_strategy_restarts_the_right_children(
    system: ActorSystem, strategy: Any, restarted: str
) -> None:
    journal = Journal()
    sup = system.supervise(specs(journal), strategy=strategy)
    assert journal.wait_starts(3) == ["a", "b", "c"]
    before = children(sup)
    before["b"].tell("crash")
    after_starts = journal.wait_starts(3 + len(restarted))[3:]
    assert sorted(after_starts) == sorted(restarted)
    after = children(sup)
    for name in "abc":
        same = after[name] is before[name]
        assert same == (name not in restarted), name
        assert after[name].ask("ping", timeout=5) == "ping"


def test_restart_intensity_exceeded_escalates(clock: ManualClock) -> None:
    journal = Journal()
    escalations: list[EscalationError] = []
    with ActorSystem("intensity", clock=clock) as system:
        sup = system.spawn(
            Supervisor,
            specs(journal, "a"),
            intensity=RestartIntensity(max_restarts=2, period=5.0),
            clock=clock,
            on_escalate=escalations.append,
        )
        journal.wait_starts(1)
        for expected_starts in (2, 3):
            children(sup)["a"].tell("crash")
            journal.wait_starts(expected_starts)
        children(sup)["a"].tell("crash")  # third crash within 5 s: give up
        assert sup.actor_stopped.wait(5)
        assert len(escalations) == 1
        assert "more than 2 restarts within 5.0s" in str(escalations[0])
        assert journal.starts == ["a", "a", "a"]


def test_restarts_spread_beyond_the_period_do_not_escalate(clock: ManualClock) -> None:
    journal = Journal()
    with ActorSystem("spread", clock=clock) as system:
        sup = system.spawn(
            Supervisor,
            specs(journal, "a"),
            intensity=RestartIntensity(max_restarts=1, period=5.0),
            clock=clock,
        )
        journal.wait_starts(1)
        for expected_starts in (2, 3, 4):
            children(sup)["a"].tell("crash")
            journal.wait_starts(expected_starts)
            clock.advance(6.0)
        assert sup.is_alive()
        stats = sup.ask("stats", timeout=5)
        assert (stats.restarts_total, stats.restarts_in_window) == (3, 0)


def test_an_escalating_child_supervisor_is_restarted_by_its_parent(system: ActorSystem) -> None:
    journal = Journal()
    inner = ChildSpec(
        "inner",
        Supervisor,
        (specs(journal, "x"),),
        {"intensity": RestartIntensity(max_restarts=0, period=5.0)},
    )
    outer = system.supervise([inner], strategy=one_for_one)
    journal.wait_starts(1)
    first_inner = children(outer)["inner"]
    children(first_inner)["x"].tell("crash")  # inner allows 0 restarts: escalates
    journal.wait_starts(2)  # the parent restarted inner, which started x again
    assert children(outer)["inner"] is not first_inner


def test_transient_children_are_not_restarted_after_a_normal_stop(system: ActorSystem) -> None:
    journal = Journal()
    sup = system.supervise(specs(journal, "ab", restart=Restart.TRANSIENT))
    journal.wait_starts(2)
    refs = children(sup)
    refs["a"].tell("quit")
    assert refs["a"].actor_stopped.wait(5)
    refs["b"].tell("crash")  # b crashes: restarted, and a stays stopped
    assert journal.wait_starts(3)[2] == "b"
    assert set(children(sup)) == {"b"}


def test_temporary_children_are_never_restarted(system: ActorSystem) -> None:
    journal = Journal()
    sup = system.supervise(specs(journal, "ab", restart=Restart.TEMPORARY))
    journal.wait_starts(2)
    refs = children(sup)
    refs["a"].tell("crash")
    assert refs["a"].actor_stopped.wait(5)
    assert set(children(sup)) == {"b"}


def test_a_child_failing_in_on_start_is_restarted(system: ActorSystem) -> None:
    journal = Journal()
    escalations: list[EscalationError] = []
    spec = ChildSpec("a", Worker, ("a", journal, True))
    system.spawn(
        Supervisor,
        [spec],
        intensity=RestartIntensity(max_restarts=2, period=60),
        on_escalate=escalations.append,
    )
    assert journal.wait_starts(3) == ["a", "a", "a"]


def test_child_specs_must_name_supervised_actor_classes() -> None:
    with pytest.raises(TypeError, match="must subclass SupervisedActor"):
        ChildSpec("bad", pykka.ThreadingActor)  # type: ignore[arg-type]
