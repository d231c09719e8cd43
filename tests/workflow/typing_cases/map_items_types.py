"""What mypy infers for ``map_items``: each ``assert_type`` fails the check when wrong."""

from __future__ import annotations

from typing import Any, assert_type

from runtime import Workflow, map_items, task

Ctx = dict[str, Any]


def urls(ctx: Ctx) -> list[str]:
    return [str(url) for url in ctx["urls"]]


def size(url: str) -> int:
    return len(url)


async def fetch(url: str) -> bytes:
    return url.encode()


# Ctx from the items function, the list's element type from the per-item step.
assert_type(map_items(urls, size), Workflow[Ctx, list[int]])
assert_type(map_items(urls, task(size)), Workflow[Ctx, list[int]])
assert_type(map_items(urls, task(size).then(task(str))), Workflow[Ctx, list[str]])
assert_type(map_items(urls, size, on_failure="collect", name="sizes"), Workflow[Ctx, list[int]])
# An async step's output is what its coroutine returns, not the coroutine.
assert_type(map_items(urls, fetch), Workflow[Ctx, list[bytes]])
assert_type(map_items(urls, task(fetch)), Workflow[Ctx, list[bytes]])
# A map composes like any workflow of its context.
assert_type(task(urls).then(map_items(urls, size)), Workflow[Ctx, list[int]])
assert_type(map_items(urls, size).then(task(urls)), Workflow[Ctx, list[str]])
# A lambda for the items takes its context from what the map is assigned to.
sizes: Workflow[Ctx, list[int]] = map_items(lambda ctx: ctx["urls"], size)
# A map of a map: a list of lists.
rows: Workflow[Ctx, list[list[int]]] = map_items(lambda ctx: ctx["rows"], map_items(urls, size))
