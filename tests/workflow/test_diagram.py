"""``to_mermaid`` and ``to_dot``: every kind of part drawn, texts that parse, states coloured."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest

from runtime import (
    ActorSystem,
    CheckpointStrategy,
    Exponential,
    LeastLoaded,
    MemoPredictor,
    NodeState,
    PermanentError,
    RetryPolicy,
    Workflow,
    dynamic,
    graph,
    map_items,
    parallel,
    task,
)

pytestmark = pytest.mark.timeout(30)

DOT = shutil.which("dot")
needs_dot = pytest.mark.skipif(
    DOT is None, reason="Graphviz's `dot` is not installed (apt-get install graphviz)"
)


def first(ctx: Any) -> int:
    return 1


def second(ctx: Any) -> int:
    return 2


def third(ctx: Any) -> int:
    return 3


def big(ctx: Any) -> bool:
    return True


def fetch(item: Any) -> Any:
    return item


def rows(ctx: Any) -> list[Any]:
    return list(ctx.get("items", []))


class Recorder:
    def on_event(self, event: object) -> None:
        pass


def every_part(name: str = "everything") -> Workflow[Any, Any]:
    """One workflow holding every combinator at least once."""
    g = graph("deps")
    start = g.add(task(first), name="g_first")
    g.add(task(second), after=[start], name="g_second")
    g.add(task(third), after=[start], name="g_third")
    retry = RetryPolicy(3, Exponential(initial=1, multiplier=2, max=30))
    guarded = (
        task(first)
        .locked("db", 10, timeout=5)
        .checkpoint(CheckpointStrategy.AFTER_EACH_STEP)
        .monitored(Recorder())
        .adaptive(LeastLoaded())
        .predictive(MemoPredictor(lambda ctx: 1))
    )
    return (
        task(first)
        .then(task(second).retry(retry).timeout(60))
        .then(task(third).when(big, skip=True))
        .then(task(first).when(big))
        .then(parallel(task(second), task(third), merge={"k": lambda values: values}))
        .then(guarded)
        .then(task(second).nested(lambda ctx: ctx, lambda ctx, out: out))
        .then(dynamic(lambda ctx: task(first), big))
        .then(map_items(rows, fetch, on_failure="collect"))
        .then(g.build())
        .named(name)
    )


# -- reading the texts back ----------------------------------------------------------------

NODE = re.compile(r'(n\d+)(\("|\(\("|\{"|\{\{"|\(\[")([^"]*)("\)|"\)\)|"\}|"\}\}|"\]\))')
SUBGRAPH = re.compile(r'subgraph (c\d+)\["([^"]*)"\]')
EDGE = re.compile(r'(\w+) (-->|-\.->)(?:\|"([^"]*)"\|)? (\w+)')
CLASS = re.compile(r"class ([\w,]+) (\w+)")


def read_mermaid(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]], dict[str, str]]:
    """Node labels by id, edges (from, to, label), subgraph labels by id; fails on any
    line that is none of the forms the renderer writes, or on unbalanced subgraphs."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes: dict[str, str] = {}
    boxes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    depth = 0
    for line in (raw.strip() for raw in lines[1:]):
        if match := NODE.fullmatch(line):
            assert match[1] not in nodes and match[1] not in boxes, f"id used twice: {line}"
            nodes[match[1]] = match[3]
        elif match := SUBGRAPH.fullmatch(line):
            assert match[1] not in nodes and match[1] not in boxes, f"id used twice: {line}"
            boxes[match[1]] = match[2]
            depth += 1
        elif line == "end":
            depth -= 1
            assert depth >= 0
        elif match := EDGE.fullmatch(line):
            edges.append((match[1], match[4], match[3] or ""))
        elif not (line.startswith("classDef ") or CLASS.fullmatch(line)):
            raise AssertionError(f"not a Mermaid line this renderer writes: {line!r}")
    assert depth == 0
    for src, dst, _ in edges:
        assert src in nodes and dst in nodes, (src, dst)
    return nodes, edges, boxes


def classes(text: str) -> dict[str, str]:
    """The class (state colour) of each node id."""
    found: dict[str, str] = {}
    for match in CLASS.finditer(text):
        for node in match[1].split(","):
            found[node] = match[2]
    return found


def render(dot_source: str, tmp_path: Any) -> subprocess.CompletedProcess[str]:
    assert DOT is not None
    return subprocess.run(
        [DOT, "-Tsvg", "-o", str(tmp_path / "out.svg")],
        input=dot_source,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


# -- tests ---------------------------------------------------------------------------------


def test_every_kind_of_part_is_drawn_in_both_texts() -> None:
    wf = every_part()
    expected = [
        "retry: 3 attempts, exponential 1 s x2 up to 30 s",
        "timeout: 60 s",
        "when big?",
        "no: skip",
        "run fails: ConditionNotMet",
        "fork",
        "join",
        "locked: db (lease 10 s, wait up to 5 s)",
        "checkpoint: after_each_step",
        "monitored: Recorder",
        "adaptive: LeastLoaded",
        "predictive: MemoPredictor",
        "nested: lambda -",
        "dynamic: generated at run time, when big",
        "map(fetch): for each item of rows (collect failures)",
        "fetch[i]",
        "graph deps",
        "everything",
    ]
    for text in (wf.to_mermaid(), wf.to_dot()):
        missing = [label for label in expected if label not in text]
        assert missing == []


def test_tasks_are_named_like_the_step_keys_of_a_run_and_graph_edges_are_kept() -> None:
    nodes, edges, boxes = read_mermaid(every_part().to_mermaid())
    tasks = {label for label in nodes.values() if label[0].isalpha() and label != "fork"}
    assert {"first", "second", "third", "first#35;2", "second#35;2", "first#35;3"} <= tasks
    assert {"g_first", "g_second", "g_third", "fetch[i]"} <= tasks
    by_label = {label: node for node, label in nodes.items()}
    assert (by_label["g_first"], by_label["g_second"], "") in edges
    assert (by_label["g_first"], by_label["g_third"], "") in edges
    decisions = [node for node, label in nodes.items() if label == "when big?"]
    assert any(src in decisions and label == "no: skip" for src, _, label in edges)
    assert len(boxes) == 11  # 2 around second, 5 around guarded, nested, map, graph, named


def test_mermaid_escapes_quotes_markup_and_hashes_in_labels() -> None:
    wf = task(first, name='say "hi" <b>#1').named("a;b")
    nodes, _, boxes = read_mermaid(wf.to_mermaid())
    assert list(nodes.values()) == ["say #quot;hi#quot; #lt;b#gt;#35;1"]
    assert list(boxes.values()) == ["a;b"]


def test_dot_output_is_well_formed_without_graphviz() -> None:
    text = every_part('quo"te \\ back').to_dot()
    assert text.startswith('digraph "quo\\"te \\\\ back" {')
    assert text.count("{") == text.count("}")
    declared = set(re.findall(r"^\s*(n\d+) \[", text, re.MULTILINE))
    for src, dst in re.findall(r"^\s*(n\d+) -> (n\d+)", text, re.MULTILINE):
        assert src in declared and dst in declared


@needs_dot
def test_graphviz_renders_the_dot_of_every_part(tmp_path: Any) -> None:
    wf = every_part('quo"te \\ back <x> #1')
    states = {"first": NodeState.COMPLETED, "fetch[0]": NodeState.FAILED}
    result = render(wf.to_dot(states), tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.svg").read_text().lstrip().startswith("<?xml")


def test_states_colour_the_task_nodes_and_a_map_by_its_items() -> None:
    wf = task(first).then(task(second)).then(map_items(rows, fetch)).then(task(third))
    states = {
        "first": NodeState.COMPLETED,
        "second": NodeState.FAILED,
        "fetch[0]": NodeState.COMPLETED,
        "fetch[1]": NodeState.PENDING,
    }
    text = wf.to_mermaid(states)
    nodes, _, _ = read_mermaid(text)
    colour = {nodes[node]: name for node, name in classes(text).items()}
    assert colour == {"first": "completed", "second": "failed", "fetch[i]": "running"}
    assert "classDef failed fill:#ffcdd2" in text
    dot = wf.to_dot(states)
    assert re.search(r'label="second".*fillcolor="#ffcdd2"', dot)
    assert 'label="third", shape=box, style="rounded"];' in dot  # no state: not filled


def test_the_states_of_a_real_run_colour_every_task_it_ran(system: ActorSystem) -> None:
    def boom(ctx: Any) -> None:
        raise PermanentError("boom")

    wf = task(first).then(task(first)).then(map_items(rows, fetch)).then(task(boom))
    handle = system.run(wf, {"items": [1, 2, 3]})
    with pytest.raises(PermanentError):
        handle.result(10)
    states = {step.step: step.state for step in handle.steps()}
    assert set(states) == {"first", "first#2", "fetch[0]", "fetch[1]", "fetch[2]", "boom"}
    text = wf.to_mermaid(states)
    nodes, _, _ = read_mermaid(text)
    colour = {nodes[node]: name for node, name in classes(text).items()}
    assert colour == {
        "first": "completed",
        "first#35;2": "completed",
        "fetch[i]": "completed",
        "boom": "failed",
    }
