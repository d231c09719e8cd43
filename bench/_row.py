"""The row record every benchmark family returns, and the helpers to fill it.

A ``Row`` is one figure measured several times beside one or more baselines
measured in the same process run. ``Series`` holds the per-repetition samples
of one measurement; ``Target`` says what the figure should meet. The table and
the JSON are rendered from rows alone (``bench/_table.py``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Config", "Family", "Row", "Series", "Target", "interleaved"]


@dataclass(frozen=True)
class Config:
    """How hard to measure: ``repeats`` repetitions; ``smoke`` picks tiny sizes."""

    smoke: bool
    repeats: int

    def size(self, full: int, smoke: int) -> int:
        """``full`` in a real run, ``smoke`` in smoke mode."""
        return smoke if self.smoke else full


@dataclass(frozen=True)
class Series:
    """The per-repetition samples of one measurement, in ``unit``."""

    name: str
    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "samples": list(self.samples),
        }


@dataclass(frozen=True)
class Target:
    """``metric op limit``. The metric is, of the row's median: ``"ratio"`` its ratio
    to the first baseline's median, ``"value"`` the median itself, ``"delta"`` the
    median minus the first baseline's median (in the row's unit)."""

    metric: Literal["ratio", "value", "delta"]
    op: Literal["<=", ">="]
    limit: float

    def met_by(self, value: float) -> bool:
        return value <= self.limit if self.op == "<=" else value >= self.limit

    def __str__(self) -> str:
        if self.metric == "delta":
            return f"{self.op} {self.limit:+g}"
        suffix = "x" if self.metric == "ratio" else ""
        return f"{self.op} {self.limit:g}{suffix}"


@dataclass(frozen=True)
class Row:
    """One figure of the table.

    ``value`` is ``None`` only when the row could not be measured; then
    ``status`` is ``"N/A"`` (the feature is not there yet) or ``"ERROR"`` (the
    benchmark itself failed) and ``note`` says why. ``ratio`` compares the
    medians of ``value`` and ``baselines[0]``.
    """

    family: str
    name: str
    unit: str
    value: Series | None
    baselines: tuple[Series, ...] = ()
    target: Target | None = None
    note: str = ""
    unavailable: Literal["N/A", "ERROR", None] = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baselines or self.baselines[0].median == 0:
            return None
        return self.value.median / self.baselines[0].median

    @property
    def delta(self) -> float | None:
        """Value median minus the first baseline's median, in ``unit``."""
        if self.value is None or not self.baselines:
            return None
        return self.value.median - self.baselines[0].median

    @property
    def status(self) -> str:
        """PASS/MISS against the target, INFO without one, else N/A or ERROR."""
        if self.unavailable is not None or self.value is None:
            return self.unavailable or "ERROR"
        if self.target is None:
            return "INFO"
        measured = {
            "ratio": self.ratio,
            "value": self.value.median,
            "delta": self.delta,
        }[self.target.metric]
        if measured is None:
            return "ERROR"
        return "PASS" if self.target.met_by(measured) else "MISS"

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "name": self.name,
            "unit": self.unit,
            "value": self.value.to_json() if self.value else None,
            "baselines": [{**b.to_json(), "ratio": self._ratio_to(b)} for b in self.baselines],
            "ratio": self.ratio,
            "delta": self.delta,
            "target": None
            if self.target is None
            else {"metric": self.target.metric, "op": self.target.op, "limit": self.target.limit},
            "status": self.status,
            "note": self.note,
            "extra": self.extra,
        }

    def _ratio_to(self, baseline: Series) -> float | None:
        if self.value is None or baseline.median == 0:
            return None
        return self.value.median / baseline.median


@dataclass(frozen=True)
class Family:
    """A named group of rows: ``run(config)`` measures them all, in this process.

    ``run`` may raise; the runner then reports one ERROR row for the family and
    goes on with the next one.
    """

    name: str
    run: Callable[[Config], Sequence[Row]]


def interleaved(
    repeats: int, measures: Sequence[tuple[str, Callable[[], float]]], *, warmup: bool = True
) -> list[Series]:
    """Run each measure once per repetition, rotating their order; one Series each.

    Rotating the order spreads drift (turbo, page cache, a noisy neighbour)
    over all measures instead of biasing whichever always runs first. With
    ``warmup``, each measure first runs once unrecorded (imports, caches).
    """
    if warmup:
        for _, measure in measures:
            measure()
    samples: list[list[float]] = [[] for _ in measures]
    for repetition in range(repeats):
        count = len(measures)
        for offset in range(count):
            index = (repetition + offset) % count
            samples[index].append(measures[index][1]())
    return [Series(name, tuple(s)) for (name, _), s in zip(measures, samples, strict=True)]
