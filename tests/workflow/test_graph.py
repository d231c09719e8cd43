"""Graphs at composition time: what ``build`` refuses, and what the fingerprint covers."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import (
    CompositionError,
    Fixed,
    GraphBuilder,
    RetryPolicy,
    Workflow,
    graph,
    parallel,
    task,
)
from runtime.workflow import Graph, tasks_of

pytestmark = pytest.mark.timeout(30)


def step(name: str) -> Workflow[Any, str]:
    return task(lambda ctx: name, name=name)


def diamond(*, d_after: tuple[str, ...] = ("a",)) -> Workflow[Any, dict[str, Any]]:
    g = graph("crawl")
    a = g.add(step("a"))
    b = g.add(step("b"))
    g.add(step("c"), after=[a, b])
    g.add(step("d"), after=d_after)
    return g.build()


def test_build_returns_a_graph_part_with_its_edges_and_a_fixed_order() -> None:
    wf = diamond()
    assert isinstance(wf, Graph)
    assert wf.name == "crawl"
    assert wf.labels == ("a", "b", "c", "d")
    assert wf.after == ((), (), (0, 1), (0,))
    assert wf.order == (0, 1, 2, 3)


def test_the_order_is_topological_with_ties_broken_by_the_order_of_add() -> None:
    g = graph("forward")
    g.add(step("late"), after="early")  # a name may refer to a part added later
    g.add(step("free"))
    g.add(step("early"))
    built = g.build()
    assert isinstance(built, Graph)
    assert [built.labels[i] for i in built.order] == ["free", "early", "late"]


def test_a_cycle_is_refused_naming_its_path() -> None:
    g = graph("loop")
    g.add(step("a"), after="c")
    g.add(step("b"), after="a")
    g.add(step("c"), after=["b"])
    g.add(step("outside"), after="a")
    with pytest.raises(CompositionError, match=r"graph 'loop' has a cycle: a -> b -> c -> a"):
        g.build()


def test_a_part_after_itself_is_a_cycle() -> None:
    g = graph("self")
    g.add(step("free"))
    g.add(step("me"), after="me")
    with pytest.raises(CompositionError, match=r"cycle: me -> me"):
        g.build()


def test_an_unknown_dependency_is_refused_naming_it() -> None:
    g = graph("crawl")
    g.add(step("a"), after="nowhere")
    with pytest.raises(CompositionError, match=r"'a' depends on unknown part 'nowhere'"):
        g.build()


def test_a_part_of_another_graph_is_refused_at_once() -> None:
    other = graph("other")
    foreign = other.add(step("x"))
    g = graph("crawl")
    with pytest.raises(CompositionError, match=r"'a' depends on 'x', a part of another graph"):
        g.add(step("a"), after=[foreign])


def test_a_duplicate_name_is_refused_and_name_gives_another() -> None:
    g = graph("crawl")
    g.add(step("fetch"))
    with pytest.raises(CompositionError, match=r"already has a part named 'fetch'"):
        g.add(step("fetch"))
    g.add(step("fetch"), name="fetch_eu")
    built = g.build()
    assert isinstance(built, Graph)
    assert built.labels == ("fetch", "fetch_eu")
    assert [t.name for t in built.members if hasattr(t, "fn")] == ["fetch", "fetch_eu"]


def test_a_renamed_task_keeps_its_own_retry_policy() -> None:
    policy = RetryPolicy(3, Fixed(0))
    g = graph("crawl")
    g.add(task(lambda ctx: 1, name="fetch", retry=policy), name="fetch_eu")
    built = g.build()
    assert isinstance(built, Graph)
    (member,) = built.members
    assert member.name == "fetch_eu"
    assert getattr(member, "policy", None) is policy
    assert getattr(member, "inner", None).name == "fetch_eu"  # type: ignore[union-attr]


def test_parts_holding_tasks_of_the_same_name_are_refused() -> None:
    g = graph("crawl")
    g.add(step("load").then(step("x")), name="first")
    g.add(step("load").then(step("y")), name="second")
    with pytest.raises(CompositionError, match=r"'first' and 'second' both hold a task"):
        g.build()


def test_an_empty_graph_and_bad_arguments_are_refused() -> None:
    with pytest.raises(CompositionError, match="has no parts"):
        graph("empty").build()
    with pytest.raises(CompositionError, match="graph\\(name\\)"):
        graph("a/b")
    g = graph("crawl")
    with pytest.raises(CompositionError, match="add\\(after\\)"):
        g.add(step("a"), after=[42])  # type: ignore[list-item]
    with pytest.raises(CompositionError, match="Workflow or a callable"):
        g.add(42)  # type: ignore[arg-type]
    with pytest.raises(CompositionError, match="add\\(name\\)"):
        g.add(step("a"), name="x/y")


def test_the_fingerprint_covers_the_edges() -> None:
    same = diamond().fingerprint()
    assert diamond().fingerprint() == same
    assert diamond(d_after=("b",)).fingerprint() != same
    assert diamond(d_after=()).fingerprint() != same


def test_a_built_graph_does_not_change_when_more_parts_are_added() -> None:
    g: GraphBuilder[dict[str, Any]] = graph("grow")
    g.add(step("a"))
    first = g.build()
    g.add(step("b"))
    assert first.fingerprint() != g.build().fingerprint()
    assert isinstance(first, Graph) and first.labels == ("a",)


def test_tasks_inside_a_graph_are_found_for_registration() -> None:
    def fa(ctx: Any) -> None: ...
    def fb(ctx: Any) -> None: ...

    g = graph("inner")
    g.add(task(fa))
    g.add(parallel(task(fb), task(fa, name="fa2")), after="fa")
    found = tasks_of(step("before").then(g.build()))
    assert sorted(fn.__name__ for fn in found) == ["<lambda>", "fa", "fa", "fb"]
