"""Mistakes mypy must report (``test_parallel_typing`` expects an error on each marked line)."""

from __future__ import annotations

from typing import Any, assert_type

from runtime import Workflow, parallel, task


def number(ctx: dict[str, Any]) -> int:
    return 1


def text(ctx: dict[str, Any]) -> str:
    return ""


def on_int(ctx: int) -> int:
    return ctx


n, s = task(number), task(text)

assert_type(parallel(n, s), Workflow[dict[str, Any], tuple[str, int]])  # error: order
assert_type(n.parallel(s, s), Workflow[dict[str, Any], tuple[int, str]])  # error: length
parallel(n, task(on_int))  # error: the branches' contexts differ
parallel(n, s, merge={"pages": 3})  # error: not a function
parallel(n)  # error: one branch is no parallel
