"""Graphs: parts with explicit dependencies, each started as soon as those completed.

``then`` and ``parallel`` build only series-parallel shapes, so "c after a
and b, d after a only" would make ``d`` wait for ``b`` too. A graph takes any
acyclic set of dependencies::

    g = graph("crawl")
    a = g.add(task(fetch_index))
    b = g.add(task(fetch_sitemap))
    g.add(task(merge_urls), after=[a, b])
    g.add(task(warm_cache), after=[a])  # starts while fetch_sitemap still runs
    wf = g.build()  # Workflow[Ctx, dict[str, Any]]: each part's output by its name

Context rule: a part runs on a copy of the graph's starting context with the
changes of every part it depends on, directly or not, applied in the graph's
order; the graph ends with the changes of all its parts applied in that order.
The graph's order is a topological one, ties broken by the order of ``add``,
so on a conflict between parts that do not depend on each other the one added
later wins (as the later branch of ``parallel`` does). A change is what
``parallel`` counts as one: a top-level key or attribute set or removed.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from actors import CompositionError
from runtime.workflow._workflow import Composite, Retry, Task, Workflow, _as_workflow, _walk

__all__ = ["Graph", "GraphBuilder", "PartRef", "graph"]

Ctx = TypeVar("Ctx")


@dataclass(frozen=True, eq=False)
class Graph(Composite):
    """The immutable graph part ``GraphBuilder.build`` returns (see module doc)."""

    name: str
    members: tuple[Workflow[Any, Any], ...]  # in the order they were added
    labels: tuple[str, ...]  # each member's name: the keys of the output
    after: tuple[tuple[int, ...], ...]  # each member's dependencies, as indexes
    order: tuple[int, ...]  # the graph's order: topological, ties by order of add

    def parts(self) -> tuple[Workflow[Any, Any], ...]:
        return self.members

    def shape_extra(self) -> tuple[Any, ...]:
        """The edges, so that resuming a run whose dependencies changed is refused."""
        return (self.labels, self.after)


@dataclass(frozen=True, eq=False)
class PartRef:
    """What ``GraphBuilder.add`` returns: a part of that graph, to name in ``after=``."""

    graph: GraphBuilder[Any]
    name: str


Dependency = PartRef | str


class GraphBuilder(Generic[Ctx]):
    """Collects the parts of a graph; ``build()`` checks them and returns the workflow.

    Mutable, unlike a workflow, so dependencies read as a list of statements;
    what ``build`` returns does not change when more parts are added later.
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name or "/" in name:
            raise CompositionError(f"graph(name) must be a non-empty str without '/', got {name!r}")
        self.name = name
        self._parts: list[Workflow[Any, Any]] = []
        self._labels: list[str] = []
        self._after: list[tuple[str, ...]] = []

    def add(
        self,
        part: Workflow[Ctx, Any] | Callable[[Ctx], Any],
        *,
        after: Dependency | Iterable[Dependency] = (),
        name: str | None = None,
    ) -> PartRef:
        """Add ``part``, to start once every part in ``after`` completed.

        ``after`` holds what earlier ``add`` calls returned, or names of parts
        (which may be added later: checked by ``build``). ``name`` defaults to
        the part's name; for a task it is also its step name.
        """
        flow = _as_workflow(f"graph {self.name!r}: add(part)", part)
        label = flow.name if name is None else name
        if not isinstance(label, str) or not label or "/" in label:
            raise CompositionError(
                f"graph {self.name!r}: add(name) must be a non-empty str without '/', got {label!r}"
            )
        if label in self._labels:
            raise CompositionError(
                f"graph {self.name!r} already has a part named {label!r}; give this one "
                "another name with add(part, name=...)"
            )
        deps = self._dependencies(label, after)
        self._parts.append(_renamed(flow, label) if name is not None else flow)
        self._labels.append(label)
        self._after.append(deps)
        return PartRef(self, label)

    def build(self) -> Workflow[Ctx, dict[str, Any]]:
        """The graph as a workflow; refuses unknown dependencies, cycles and step-name clashes."""
        if not self._parts:
            raise CompositionError(f"graph {self.name!r} has no parts")
        index = {label: i for i, label in enumerate(self._labels)}
        after: list[tuple[int, ...]] = []
        for label, deps in zip(self._labels, self._after, strict=True):
            unknown = [dep for dep in deps if dep not in index]
            if unknown:
                raise CompositionError(
                    f"graph {self.name!r}: {label!r} depends on unknown part {unknown[0]!r}"
                )
            after.append(tuple(sorted(index[dep] for dep in deps)))
        order = _topological(after)
        if len(order) < len(after):
            cycle = " -> ".join(self._labels[i] for i in _cycle(after, set(order)))
            raise CompositionError(
                f"graph {self.name!r} has a cycle: {cycle} (each part after the one before it)"
            )
        _refuse_shared_step_names(self.name, self._labels, self._parts)
        return Graph(self.name, tuple(self._parts), tuple(self._labels), tuple(after), order)

    def _dependencies(
        self, label: str, after: Dependency | Iterable[Dependency]
    ) -> tuple[str, ...]:
        items = [after] if isinstance(after, PartRef | str) else list(after)
        names: list[str] = []
        for item in items:
            if isinstance(item, PartRef):
                if item.graph is not self:
                    raise CompositionError(
                        f"graph {self.name!r}: {label!r} depends on {item.name!r}, "
                        f"a part of another graph ({item.graph.name!r})"
                    )
                dep = item.name
            elif isinstance(item, str):
                dep = item
            else:
                raise CompositionError(
                    f"graph {self.name!r}: add(after) takes what add returned or part names, "
                    f"got {item!r}"
                )
            if dep not in names:
                names.append(dep)
        return tuple(names)


def graph(name: str) -> GraphBuilder[Any]:
    """Start a graph named ``name``; annotate it as ``GraphBuilder[MyCtx]`` to type its parts."""
    return GraphBuilder(name)


def _renamed(part: Workflow[Any, Any], name: str) -> Workflow[Any, Any]:
    """A task (or a task's own retry) takes its part's name, so its step is named so too."""
    if isinstance(part, Task):
        return dataclasses.replace(part, name=name)
    if isinstance(part, Retry) and isinstance(part.inner, Task):
        return Retry(name, dataclasses.replace(part.inner, name=name), part.policy)
    return part


def _topological(after: list[tuple[int, ...]]) -> tuple[int, ...]:
    """Kahn's algorithm, the earliest added first among the ready: a fixed order."""
    waiting = [len(deps) for deps in after]
    dependents: list[list[int]] = [[] for _ in after]
    for i, deps in enumerate(after):
        for dep in deps:
            dependents[dep].append(i)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in dependents[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                heapq.heappush(ready, j)
    return tuple(order)


def _cycle(after: list[tuple[int, ...]], ordered: set[int]) -> list[int]:
    """One cycle among the parts Kahn's algorithm could not order, first to last.

    Each of those waits for at least one other of them, so following such a
    dependency from any of them must come back to a part already seen.
    """
    current = min(i for i in range(len(after)) if i not in ordered)
    seen: dict[int, int] = {}
    path: list[int] = []
    while current not in seen:
        seen[current] = len(path)
        path.append(current)
        current = next(dep for dep in after[current] if dep not in ordered)
    loop = path[seen[current] :]
    loop.reverse()  # followed dependencies backwards; read it in the order the parts would run
    first = loop.index(min(loop))  # from the part added first: the same text for the same graph
    loop = loop[first:] + loop[:first]
    return [*loop, loop[0]]


def _refuse_shared_step_names(
    name: str, labels: list[str], parts: list[Workflow[Any, Any]]
) -> None:
    """Two parts holding a task of the same name would take the step keys ``x`` and
    ``x#2`` in the order they happen to start, so a resume could hand one's
    recorded output to the other: refused here, where a rename is easy."""
    owner: dict[str, str] = {}
    for label, part in zip(labels, parts, strict=True):
        for step in {node.name for node in _walk(part) if isinstance(node, Task)}:
            if owner.setdefault(step, label) != label:
                raise CompositionError(
                    f"graph {name!r}: parts {owner[step]!r} and {label!r} both hold a task "
                    f"named {step!r}; rename one (task(fn, name=...))"
                )
