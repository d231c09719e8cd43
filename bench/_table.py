"""Rendering: the one printed table and the JSON document, both from the same rows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._row import Config, Row, Series

__all__ = ["document", "render", "write_json"]

_COLUMNS = (
    ("figure", 58, "<"),
    ("median", 11, ">"),
    ("min-max", 21, ">"),
    ("unit", 9, "<"),
    ("ratio", 10, ">"),
    ("target", 8, ">"),
    ("status", 6, "<"),
)


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _line(cells: Sequence[str]) -> str:
    return " ".join(
        f"{cell[:width]:{align}{width}}"
        for cell, (_, width, align) in zip(cells, _COLUMNS, strict=True)
    ).rstrip()


def _series_cells(label: str, series: Series, unit: str) -> list[str]:
    return [label, _number(series.median), f"{_number(series.low)}-{_number(series.high)}", unit]


def _row_lines(row: Row) -> list[str]:
    target = str(row.target) if row.target else ""
    if row.value is None:
        lines = [_line([row.name, "-", "-", row.unit, "", target, row.status])]
    else:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        if row.target is not None and row.target.metric == "delta" and row.delta is not None:
            ratio = ("+" if row.delta >= 0 else "") + _number(row.delta)
        lines = [_line([*_series_cells(row.name, row.value, row.unit), ratio, target, row.status])]
    for baseline in row.baselines:
        ratio = ""
        if row.value is not None and baseline.median:
            ratio = f"({_number(row.value.median / baseline.median)}x)"
        lines.append(
            _line([*_series_cells(f"  vs {baseline.name}", baseline, row.unit), ratio, "", ""])
        )
    if row.note:
        lines.append(f"    note: {row.note}")
    return lines


def render(rows: Sequence[Row], machine: dict[str, Any], config: Config) -> str:
    """The table: a machine header, then each row with its baselines indented under it.

    ``ratio`` is median / first baseline's median (for a ``"delta"`` target, the
    signed difference median - first baseline's median, in the row's unit); the
    other baselines' ratios are shown in parentheses.
    """
    mode = "SMOKE (tiny sizes, not figures)" if config.smoke else "full"
    header = [
        f"actorflow benchmarks: {mode}, {config.repeats} repetition(s), median and min-max",
        f"{machine['date']}  commit {machine['commit']}  {machine['platform']}",
        f"{machine['cores']} cores ({machine['usable_cores']} usable), {machine['cpu']}",
        f"{machine['python']}, pykka {machine['pykka']}, msgpack {machine['msgpack']}, "
        f"pyzmq {machine['pyzmq']}, libzmq {machine['libzmq']}",
        "",
        _line([name for name, _, _ in _COLUMNS]),
        _line(["-" * width for _, width, _ in _COLUMNS]),
    ]
    body: list[str] = []
    family = None
    for row in rows:
        if row.family != family:
            family = row.family
            body.append(f"[{family}]")
        body.extend(_row_lines(row))
    return "\n".join(header + body)


def document(rows: Sequence[Row], machine: dict[str, Any], config: Config) -> dict[str, Any]:
    return {
        "schema": 1,
        "machine": machine,
        "config": {"smoke": config.smoke, "repeats": config.repeats},
        "rows": [row.to_json() for row in rows],
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
