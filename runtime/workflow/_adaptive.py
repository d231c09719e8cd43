"""Adaptive placement (``wf.adaptive(strategy)``) and predictive steps (``wf.predictive``).

Placement: for each step attempt the run coordinator offers its strategy the
live candidate nodes with what this run has seen of them (steps in flight,
completed, failed, mean duration) and runs the step where the strategy says.
Built in: ``RoundRobin`` (the default), ``LeastLoaded``, ``Fastest``.

Prediction: before running the wrapped part, the coordinator asks the
predictor for ``Prediction(output, confidence)``; at or above the threshold
the part is skipped and the prediction is its output (speculative, like a
cache that knows how sure it is); below it, the part runs and the predictor
is shown the real output to learn from. Predictors run on the coordinator
and must be quick. ``MemoPredictor`` is a simple learning one.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Fastest",
    "LeastLoaded",
    "MemoPredictor",
    "NodeLoad",
    "PlacementStrategy",
    "Prediction",
    "Predictor",
    "RoundRobin",
]


@dataclass(frozen=True)
class NodeLoad:
    """What one run has seen of a candidate node."""

    node: str
    in_flight: int = 0
    completed: int = 0
    failed: int = 0
    mean_duration: float | None = None


@runtime_checkable
class PlacementStrategy(Protocol):
    def choose(self, step: str, candidates: Sequence[NodeLoad]) -> str:
        """The node (one of ``candidates``, never empty) to run ``step`` on."""
        ...


class RoundRobin:
    """Each candidate in turn."""

    def __init__(self) -> None:
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def choose(self, step: str, candidates: Sequence[NodeLoad]) -> str:
        with self._lock:
            return candidates[next(self._turn) % len(candidates)].node


class LeastLoaded:
    """The candidate with the fewest steps of this run in flight (ties: fewer done)."""

    def choose(self, step: str, candidates: Sequence[NodeLoad]) -> str:
        return min(candidates, key=lambda c: (c.in_flight, c.completed, c.node)).node


class Fastest:
    """The candidate with the lowest mean step duration; unmeasured ones are tried first."""

    def choose(self, step: str, candidates: Sequence[NodeLoad]) -> str:
        return min(
            candidates,
            key=lambda c: (c.mean_duration is not None, c.mean_duration or 0.0, c.in_flight),
        ).node


@dataclass(frozen=True)
class Prediction:
    """A predicted output and how sure the predictor is of it, in [0, 1]."""

    output: Any
    confidence: float


@runtime_checkable
class Predictor(Protocol):
    def predict(self, ctx: Any) -> Prediction | None:
        """A prediction for this context, or None when there is none."""
        ...

    def observe(self, ctx: Any, output: Any) -> None:
        """The real output of a run that was not predicted confidently enough."""
        ...


class MemoPredictor:
    """Predicts the output most often seen for ``key(ctx)``.

    Confidence is the share of the observations of that key that agree, and
    grows only with evidence: ``min(share, n / (n + 1))``, so one observation
    gives 0.5, nine identical ones 0.9. Outputs must be hashable or are
    compared by ``repr``.
    """

    def __init__(self, key: Callable[[Any], Hashable]) -> None:
        self._key = key
        self._seen: dict[Hashable, Counter[str]] = defaultdict(Counter)
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()

    def predict(self, ctx: Any) -> Prediction | None:
        with self._lock:
            counts = self._seen.get(self._key(ctx))
            if not counts:
                return None
            label, hits = counts.most_common(1)[0]
            total = sum(counts.values())
            confidence = min(hits / total, total / (total + 1))
            return Prediction(self._values[label], confidence)

    def observe(self, ctx: Any, output: Any) -> None:
        label = repr(output)
        with self._lock:
            self._seen[self._key(ctx)][label] += 1
            self._values[label] = output
