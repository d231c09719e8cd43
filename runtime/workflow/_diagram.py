"""A picture of a workflow's static tree: Mermaid (``flowchart TD``) or Graphviz DOT.

Meant for reading a composition before running it, and for seeing where a
run is (``states``). One layout feeds both texts, so they draw the same
thing: tasks are nodes named like the step keys a run gives them (``load``,
``fetch[i]`` per item of a map, ``x#2`` on a repeated name); ``then`` is
edges in sequence; ``parallel`` a fork and a join; ``when`` a decision;
wrappers (retry, timeout, locked, checkpoint, monitored, adaptive,
predictive, nested, named) are labelled boxes around what they wrap; a map's
per-item part sits in a "for each item" box; a graph keeps its edges; a
dynamic part is one node, since its workflow exists only at run time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from actors import NodeState
from runtime.workflow._graph import Graph
from runtime.workflow._map import MapItems
from runtime.workflow._retry import Custom, Exponential, Fixed, RetryPolicy
from runtime.workflow._workflow import (
    Adaptive,
    Checkpointed,
    Composite,
    Deadline,
    Dynamic,
    Locked,
    Monitored,
    Named,
    Nested,
    Parallel,
    Predictive,
    Retry,
    Task,
    Then,
    When,
    Workflow,
)

__all__ = ["to_dot", "to_mermaid"]

States = Mapping[str, NodeState]

# Fill and border per state; the same colours in both outputs.
_COLOURS: dict[NodeState, tuple[str, str]] = {
    NodeState.PENDING: ("#eeeeee", "#9e9e9e"),
    NodeState.RUNNING: ("#bbdefb", "#1565c0"),
    NodeState.COMPLETED: ("#c8e6c9", "#2e7d32"),
    NodeState.FAILED: ("#ffcdd2", "#c62828"),
    NodeState.CANCELED: ("#ffe0b2", "#ef6c00"),
}
_ITEM_INDEXES = "ijklmn"  # fetch[i], then fetch[i][j] for a map inside a map


@dataclass
class _Node:
    id: str
    label: str
    shape: str  # task, fork, join, decision, dynamic, fail
    state: NodeState | None = None


@dataclass
class _Edge:
    src: str
    dst: str
    label: str = ""
    dashed: bool = False


@dataclass
class _Cluster:
    id: str
    label: str
    items: Items = field(default_factory=list)


Items: TypeAlias = list[_Node | _Cluster]


def layout(wf: Workflow[Any, Any], states: States | None = None) -> tuple[Items, list[_Edge]]:
    """What both texts draw: nested boxes of nodes, then every edge; tasks coloured by state."""
    builder = _Builder(states or {})
    builder.part(wf, 0)
    return builder.items, builder.edges


class _Builder:
    """Turns each part into a fragment with one entry node and one exit node."""

    def __init__(self, states: States) -> None:
        self.items: Items = []
        self.edges: list[_Edge] = []
        self._states = states
        self._open = [self.items]
        self._ids = 0
        self._key_counts: dict[str, int] = {}

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids}"

    def node(self, label: str, shape: str, state: NodeState | None = None) -> str:
        node = _Node(self._id("n"), label, shape, state)
        self._open[-1].append(node)
        return node.id

    def edge(self, src: str, dst: str, label: str = "", *, dashed: bool = False) -> None:
        self.edges.append(_Edge(src, dst, label, dashed))

    @contextmanager
    def cluster(self, label: str) -> Iterator[None]:
        box = _Cluster(self._id("c"), label)
        self._open[-1].append(box)
        self._open.append(box.items)
        try:
            yield
        finally:
            self._open.pop()

    def part(self, wf: Workflow[Any, Any], depth: int) -> tuple[str, str]:
        """Draw ``wf`` (``depth``: how many maps it is inside); its entry and exit ids."""
        if isinstance(wf, Then):
            first, last = self.part(wf.steps[0], depth)
            for step in wf.steps[1:]:
                entry, exit_ = self.part(step, depth)
                self.edge(last, entry)
                last = exit_
            return first, last
        if isinstance(wf, Parallel):
            return self._fan("fork", list(wf.branches), depth)
        if isinstance(wf, When):
            return self._when(wf, depth)
        if isinstance(wf, Task):
            key, state = self._step(wf.name, depth)
            node = self.node(key, "task", state)
            return node, node
        if isinstance(wf, Dynamic):
            node = self.node(_dynamic_label(wf), "dynamic")
            return node, node
        return self._box(wf, depth)

    def _box(self, wf: Workflow[Any, Any], depth: int) -> tuple[str, str]:
        """A part drawn as a labelled box around the parts it holds."""
        with self.cluster(_box_label(wf)):
            if isinstance(wf, Graph):
                return self._graph(wf, depth)
            if isinstance(wf, MapItems):
                return self.part(wf.inner, depth + 1)
            if isinstance(wf, _WRAPPERS):
                return self.part(wf.inner, depth)
            assert isinstance(wf, Composite)  # _box_label refused anything else
            return self._fan("parts", list(wf.parts()), depth)

    def _fan(self, kind: str, branches: list[Workflow[Any, Any]], depth: int) -> tuple[str, str]:
        fork = self.node(kind, "fork")
        ends = [self.part(branch, depth) for branch in branches]
        join = self.node("join", "join")
        for entry, exit_ in ends:
            self.edge(fork, entry)
            self.edge(exit_, join)
        return fork, join

    def _when(self, wf: When, depth: int) -> tuple[str, str]:
        decision = self.node(f"when {_fn_name(wf.condition)}?", "decision")
        entry, exit_ = self.part(wf.inner, depth)
        self.edge(decision, entry, "yes")
        if not wf.skip:
            fail = self.node("run fails: ConditionNotMet", "fail")
            self.edge(decision, fail, "no", dashed=True)
            return decision, exit_
        join = self.node("join", "join")
        self.edge(exit_, join)
        self.edge(decision, join, "no: skip", dashed=True)
        return decision, join

    def _graph(self, wf: Graph, depth: int) -> tuple[str, str]:
        ends = [self.part(member, depth) for member in wf.members]
        for i, deps in enumerate(wf.after):
            for dep in deps:
                self.edge(ends[dep][1], ends[i][0])
        needed = {dep for deps in wf.after for dep in deps}
        roots = [ends[i][0] for i, deps in enumerate(wf.after) if not deps]
        sinks = [ends[i][1] for i in range(len(ends)) if i not in needed]
        entry, exit_ = roots[0], sinks[0]
        if len(roots) > 1:
            entry = self.node("start", "fork")
            for root in roots:
                self.edge(entry, root)
        if len(sinks) > 1:
            exit_ = self.node("join", "join")
            for sink in sinks:
                self.edge(sink, exit_)
        return entry, exit_

    def _step(self, name: str, depth: int) -> tuple[str, NodeState | None]:
        """The key a run gives this task (``name[i]`` in a map, ``#n`` on repeats), its state.

        Inside a map the state sums up every item's (``fetch[0]``, ``fetch[1]``...).
        """
        base = name + "".join(f"[{index}]" for index in _ITEM_INDEXES[:depth])
        count = self._key_counts.get(base, 0) + 1
        self._key_counts[base] = count
        repeat = "" if count == 1 else f"#{count}"
        if depth == 0:
            return base + repeat, self._states.get(base + repeat)
        pattern = re.compile(re.escape(name) + r"\[\d+\]" * depth + re.escape(repeat))
        found = [state for key, state in self._states.items() if pattern.fullmatch(key)]
        return base + repeat, _summary(found) if found else None


def _summary(states: list[NodeState]) -> NodeState:
    """One state for the items of a map: the worst, or running while some remain."""
    for worst in (NodeState.FAILED, NodeState.RUNNING, NodeState.CANCELED):
        if worst in states:
            return worst
    if all(state is NodeState.COMPLETED for state in states):
        return NodeState.COMPLETED
    return NodeState.RUNNING if NodeState.COMPLETED in states else NodeState.PENDING


def _fn_name(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__name__", type(fn).__name__)
    return "lambda" if name == "<lambda>" else str(name)


def _seconds(value: float) -> str:
    return f"{value:g} s"


def _backoff(policy: RetryPolicy) -> str:
    backoff = policy.backoff
    if isinstance(backoff, Fixed):
        return f"fixed {_seconds(backoff.seconds)}"
    if isinstance(backoff, Exponential):
        jitter = f", jitter {backoff.jitter:g}" if backoff.jitter else ""
        growth = f"x{backoff.multiplier:g} up to {_seconds(backoff.max)}"
        return f"exponential {_seconds(backoff.initial)} {growth}{jitter}"
    if isinstance(backoff, Custom):
        return f"custom {_fn_name(backoff.fn)}"
    return type(backoff).__name__


def _dynamic_label(wf: Dynamic) -> str:
    title = "dynamic" if wf.name == "dynamic" else f"dynamic {wf.name}"
    when = "" if wf.condition is None else f", when {_fn_name(wf.condition)}"
    return f"{title}: generated at run time{when}"


def _map_label(wf: MapItems) -> str:
    title = wf.name if wf.name.startswith("map(") else f"map_items {wf.name}"
    collect = " (collect failures)" if wf.on_failure == "collect" else ""
    return f"{title}: for each item of {_fn_name(wf.items)}{collect}"


def _retry_label(wf: Retry) -> str:
    attempts = wf.policy.max_attempts
    return f"retry: {attempts} attempt{'s' if attempts != 1 else ''}, {_backoff(wf.policy)}"


def _locked_label(wf: Locked) -> str:
    wait = "" if wf.wait_timeout is None else f", wait up to {_seconds(wf.wait_timeout)}"
    return f"locked: {wf.lock} (lease {_seconds(wf.lease)}{wait})"


_WRAPPERS = (Retry, Deadline, Locked, Checkpointed, Monitored, Adaptive, Predictive, Nested, Named)
_BOX_LABELS: dict[type, Callable[[Any], str]] = {
    Retry: _retry_label,
    Deadline: lambda wf: f"timeout: {_seconds(wf.seconds)}",
    Locked: _locked_label,
    Checkpointed: lambda wf: f"checkpoint: {wf.strategy.to_setting()}",
    Monitored: lambda wf: (
        "monitored: " + (", ".join(type(o).__name__ for o in wf.observers) or "no observers")
    ),
    Adaptive: lambda wf: f"adaptive: {type(wf.strategy).__name__}",
    Predictive: lambda wf: (
        f"predictive: {type(wf.predictor).__name__}, skip when >= {wf.threshold:g} sure"
    ),
    Nested: lambda wf: f"nested: {_fn_name(wf.ctx_mapper)} -> {_fn_name(wf.out_mapper)}",
    Named: lambda wf: str(wf.name),
    MapItems: _map_label,
    Graph: lambda wf: f"graph {wf.name}",
}


def _box_label(wf: Workflow[Any, Any]) -> str:
    """The label of the box a wrapper, map, graph or other composite part is drawn as."""
    label = _BOX_LABELS.get(type(wf))
    if label is not None:
        return label(wf)
    if isinstance(wf, Composite):  # a kind of part this module does not know yet
        return f"{type(wf).__name__} {wf.name}"
    raise TypeError(f"cannot draw workflow part {wf!r}")


# -- Mermaid -------------------------------------------------------------------------------

_MERMAID_SHAPES = {
    "task": ('("', '")'),
    "fork": ('(("', '"))'),
    "join": ('(("', '"))'),
    "decision": ('{"', '"}'),
    "dynamic": ('{{"', '"}}'),
    "fail": ('(["', '"])'),
}


def _mermaid_text(text: str) -> str:
    """A label Mermaid shows as written: quotes, markup and ``#`` as entity codes."""
    text = text.replace("#", "#35;")  # first: the codes below start with '#'
    for char, code in (('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text


def to_mermaid(wf: Workflow[Any, Any], states: States | None = None) -> str:
    """``wf`` as a Mermaid ``flowchart TD`` (see module doc)."""
    items, edges = layout(wf, states)
    lines = ["flowchart TD"]
    coloured: dict[NodeState, list[str]] = {}

    def emit(children: Items, indent: str) -> None:
        for item in children:
            if isinstance(item, _Cluster):
                lines.append(f'{indent}subgraph {item.id}["{_mermaid_text(item.label)}"]')
                emit(item.items, indent + "    ")
                lines.append(f"{indent}end")
                continue
            opening, closing = _MERMAID_SHAPES[item.shape]
            lines.append(f"{indent}{item.id}{opening}{_mermaid_text(item.label)}{closing}")
            if item.state is not None:
                coloured.setdefault(item.state, []).append(item.id)

    emit(items, "    ")
    for edge in edges:
        arrow = "-.->" if edge.dashed else "-->"
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        lines.append(f"    {edge.src} {arrow}{label} {edge.dst}")
    for state, ids in coloured.items():
        fill, stroke = _COLOURS[state]
        name = state.name.lower()
        lines.append(f"    classDef {name} fill:{fill},stroke:{stroke},stroke-width:2px")
        lines.append(f"    class {','.join(ids)} {name}")
    return "\n".join(lines) + "\n"


# -- Graphviz DOT --------------------------------------------------------------------------

_DOT_SHAPES = {
    "task": ("box", "rounded"),
    "fork": ("circle", ""),  # a fork, a join: small and plain beside the tasks
    "join": ("circle", ""),
    "decision": ("diamond", ""),
    "dynamic": ("hexagon", ""),
    "fail": ("box", "rounded,dashed"),
}


def _dot_text(text: str) -> str:
    """A double-quoted DOT string: backslashes and quotes escaped, newlines kept."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def to_dot(wf: Workflow[Any, Any], states: States | None = None) -> str:
    """``wf`` as a Graphviz ``digraph`` (see module doc); ``dot -Tsvg`` renders it."""
    items, edges = layout(wf, states)
    lines = [
        f"digraph {_dot_text(wf.name)} {{",
        "    rankdir=TB;",
        '    fontname="Helvetica";',
        '    node [fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]

    def emit(children: Items, indent: str) -> None:
        for item in children:
            if isinstance(item, _Cluster):
                lines.append(f"{indent}subgraph cluster_{item.id} {{")
                lines.append(f'{indent}    label={_dot_text(item.label)}; style="rounded,dashed";')
                emit(item.items, indent + "    ")
                lines.append(f"{indent}}}")
                continue
            shape, style = _DOT_SHAPES[item.shape]
            attributes = f"label={_dot_text(item.label)}, shape={shape}"
            if item.state is not None:
                fill, stroke = _COLOURS[item.state]
                style = ",".join(filter(None, (style, "filled")))
                attributes += f', fillcolor="{fill}", color="{stroke}", penwidth=2'
            if style:
                attributes += f', style="{style}"'
            lines.append(f"{indent}{item.id} [{attributes}];")

    emit(items, "    ")
    for edge in edges:
        attributes = []
        if edge.label:
            attributes.append(f"label={_dot_text(edge.label)}")
        if edge.dashed:
            attributes.append("style=dashed")
        suffix = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"    {edge.src} -> {edge.dst}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"
