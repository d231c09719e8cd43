"""The run page's workflow diagram: Mermaid text always, an SVG when Graphviz is installed.

The workflow is code, so it is found by the run's workflow name among those
``--app MODULE``'s ``workflows()`` returned at start-up (a name read from the
database is never imported). Steps are coloured by their recorded state.
Rendering goes through Graphviz's ``dot`` binary; its SVGs are cached by
(workflow, states), so a page polled every second runs ``dot`` only when a
state changed.
"""

from __future__ import annotations

import shutil
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from actors import NodeState
from runtime._cli._web_html import graph_section
from runtime._cli.graph import RenderError, render_svg
from runtime.store import Checkpoint
from runtime.workflow import Workflow

__all__ = ["GraphRenderer", "step_states"]

_RENDER_SECONDS = 10.0
_CACHED = 64


def step_states(checkpoint: Checkpoint) -> dict[str, NodeState]:
    """Each recorded step's state, as the diagram colours it (unknown names left out)."""
    by_value = {state.value: state for state in NodeState}
    return {
        key: by_value[record.state]
        for key, record in checkpoint.steps.items()
        if record.state in by_value
    }


class GraphRenderer:
    """Renders the diagram section of a run page; safe to call from many threads."""

    def __init__(
        self, workflows: Mapping[str, Workflow[Any, Any]], app: str | None, dot: str | None
    ) -> None:
        self._workflows = dict(workflows)
        self._app = app
        self._dot = dot
        self._lock = threading.Lock()
        self._svgs: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], str | None]
        self._svgs = OrderedDict()

    @classmethod
    def find_dot(
        cls, workflows: Mapping[str, Workflow[Any, Any]], app: str | None
    ) -> GraphRenderer:
        return cls(workflows, app, shutil.which("dot"))

    def section(self, checkpoint: Checkpoint) -> str:
        wf = self._workflows.get(checkpoint.workflow)
        if wf is None:
            return graph_section(None, None, self._missing(checkpoint.workflow))
        states = step_states(checkpoint)
        hints = []
        if wf.fingerprint() != checkpoint.fingerprint:
            hints.append(
                f"The workflow {wf.name!r} in --app {self._app} has changed since this run "
                f"started (fingerprint {wf.fingerprint()}, the run's {checkpoint.fingerprint}): "
                "the diagram is of today's code."
            )
        svg = self._svg(wf, states)
        if self._dot is None:
            hints.append(
                "For a drawn diagram, install Graphviz (Debian/Ubuntu: apt-get install "
                "graphviz) and restart actorflow web; the Mermaid text renders on GitHub "
                "and in any Mermaid viewer."
            )
        elif svg is None:
            hints.append("Graphviz's dot failed on this workflow; the Mermaid text is below.")
        return graph_section(wf.to_mermaid(states=states), svg, " ".join(hints))

    def _missing(self, name: str) -> str:
        if self._app is None:
            return (
                f"To see the diagram of workflow {name!r}, start actorflow web with "
                "--app MODULE, the module whose workflows() lists it (as for actorflow graph)."
            )
        return (
            f"--app {self._app}'s workflows() has no workflow named {name!r}; "
            f"it has: {', '.join(sorted(self._workflows)) or 'none'}."
        )

    def _svg(self, wf: Workflow[Any, Any], states: Mapping[str, NodeState]) -> str | None:
        if self._dot is None:
            return None
        key = (wf.name, tuple(sorted((k, v.value) for k, v in states.items())))
        with self._lock:
            if key in self._svgs:
                self._svgs.move_to_end(key)
                return self._svgs[key]
        svg = _render(self._dot, wf.to_dot(states=states))
        with self._lock:
            self._svgs[key] = svg
            while len(self._svgs) > _CACHED:
                self._svgs.popitem(last=False)
        return svg


def _render(dot: str, source: str) -> str | None:
    """The SVG of ``source`` from ``<svg`` on (no XML prolog), or None if it failed."""
    try:
        svg = render_svg(dot, source, _RENDER_SECONDS)
    except RenderError:
        return None
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else None
