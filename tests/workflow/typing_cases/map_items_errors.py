"""Mistakes mypy must report (``test_map_items`` expects an error on each marked line)."""

from __future__ import annotations

from typing import Any, assert_type

from runtime import Workflow, map_items, task


def urls(ctx: dict[str, Any]) -> list[str]:
    return [str(url) for url in ctx["urls"]]


def numbers(ctx: dict[str, Any]) -> list[int]:
    return [1]


def size(url: str) -> int:
    return len(url)


assert_type(map_items(urls, size), Workflow[dict[str, Any], list[str]])  # error: output type
assert_type(map_items(urls, size), Workflow[dict[str, Any], int])  # error: not a list
map_items(numbers, size)  # error: the items are not what the step takes
map_items(numbers, task(size))  # error: nor what the workflow takes
map_items(urls, size, on_failure="skip")  # error: no such policy
task(numbers).then(map_items(lambda ctx: [1], task(size)))  # error: items of the wrong type
