"""What mypy infers for ``parallel`` and ``task``: an ``assert_type`` fails when wrong."""

from __future__ import annotations

from typing import Any, assert_type

from runtime import Workflow, parallel, task

Ctx = dict[str, Any]


def number(ctx: Ctx) -> int:
    return 1


def text(ctx: Ctx) -> str:
    return ""


def flag(ctx: Ctx) -> bool:
    return True


def real(ctx: Ctx) -> float:
    return 1.0


def data(ctx: Ctx) -> bytes:
    return b""


def nothing(ctx: Ctx) -> None:
    return None


def count(ctx: int) -> int:
    return ctx


n, s, b, r, d, z = task(number), task(text), task(flag), task(real), task(data), task(nothing)

assert_type(parallel(n, s), Workflow[Ctx, tuple[int, str]])
assert_type(parallel(n, s, b), Workflow[Ctx, tuple[int, str, bool]])
assert_type(parallel(n, s, b, r), Workflow[Ctx, tuple[int, str, bool, float]])
assert_type(parallel(n, s, b, r, d), Workflow[Ctx, tuple[int, str, bool, float, bytes]])
assert_type(parallel(n, s, b, r, d, z), Workflow[Ctx, tuple[int, str, bool, float, bytes, None]])
assert_type(parallel(n, s, b, r, d, z, n), Workflow[Ctx, tuple[Any, ...]])

assert_type(n.parallel(s), Workflow[Ctx, tuple[int, str]])
assert_type(n.parallel(s, b), Workflow[Ctx, tuple[int, str, bool]])
assert_type(n.parallel(s, b, r), Workflow[Ctx, tuple[int, str, bool, float]])
assert_type(n.parallel(s, b, r, d), Workflow[Ctx, tuple[int, str, bool, float, bytes]])
assert_type(n.parallel(s, b, r, d, z), Workflow[Ctx, tuple[int, str, bool, float, bytes, None]])
assert_type(n.parallel(s, b, r, d, z, n), Workflow[Ctx, tuple[Any, ...]])

# plain functions as branches, and the merge option, keep the types
assert_type(parallel(n, text, flag), Workflow[Ctx, tuple[int, str, bool]])
assert_type(n.parallel(text, merge={"pages": len}), Workflow[Ctx, tuple[int, str]])
assert_type(
    parallel(n, s, merge={"pages": lambda values: values[-1]}), Workflow[Ctx, tuple[int, str]]
)

# a list of branches: the outputs' count is unknown, so is the tuple's
counts = [task(count) for _ in range(10)]
assert_type(parallel(*counts), Workflow[int, tuple[Any, ...]])
assert_type(task(count).parallel(*counts), Workflow[int, tuple[Any, ...]])


async def fetch_async(ctx: dict[str, int]) -> str:
    return "fetched"


# An async task's output type is what its coroutine returns, not the coroutine.
assert_type(task(fetch_async), Workflow[dict[str, int], str])
assert_type(task(fetch_async).then(task(fetch_async)), Workflow[dict[str, int], str])
