"""What one run has seen of each node it placed steps on (for adaptive placement)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from runtime.workflow import NodeLoad

__all__ = ["LoadBook"]


class LoadBook:
    """The coordinator's running tally per node (used only from its thread)."""

    def __init__(self) -> None:
        self._in_flight: Counter[str] = Counter()
        self._completed: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()
        self._durations: dict[str, float] = defaultdict(float)

    def started(self, node: str) -> None:
        self._in_flight[node] += 1

    def finished(self, node: str, *, ok: bool, duration: float) -> None:
        self._in_flight[node] = max(0, self._in_flight[node] - 1)
        if ok:
            self._completed[node] += 1
            self._durations[node] += duration
        else:
            self._failed[node] += 1

    def loads(self, nodes: Sequence[str]) -> list[NodeLoad]:
        return [
            NodeLoad(
                node,
                self._in_flight[node],
                self._completed[node],
                self._failed[node],
                self._durations[node] / self._completed[node] if self._completed[node] else None,
            )
            for node in nodes
        ]
