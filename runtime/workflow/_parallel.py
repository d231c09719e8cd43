"""``parallel(a, b, ...)``, typed: one overload per count of branches, 2 to 6.

A ``TypeVarTuple`` cannot map each branch's ``Workflow[Ctx, T]`` to its ``T``,
so overloads do: mypy infers ``parallel(a, b, c)`` as ``Workflow[Ctx,
tuple[A, B, C]]``; from 7 branches the output is ``tuple[Any, ...]``. No two
overloads accept the same count of branches: where they overlap, an ``Any``
in the context type (``dict[str, Any]``) makes mypy infer ``Any``. The part
itself is built by ``parallel_part``, beside ``Workflow.parallel``'s overloads.
"""

from __future__ import annotations

from typing import Any, TypeVar, overload

from runtime.workflow._workflow import Branch, MergeFns, Workflow, parallel_part

__all__ = ["parallel"]

Ctx = TypeVar("Ctx")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")
E = TypeVar("E")
F = TypeVar("F")


@overload
def parallel(
    a: Branch[Ctx, A], b: Branch[Ctx, B], /, *, merge: MergeFns | None = None
) -> Workflow[Ctx, tuple[A, B]]: ...
@overload
def parallel(
    a: Branch[Ctx, A],
    b: Branch[Ctx, B],
    c: Branch[Ctx, C],
    /,
    *,
    merge: MergeFns | None = None,
) -> Workflow[Ctx, tuple[A, B, C]]: ...
@overload
def parallel(
    a: Branch[Ctx, A],
    b: Branch[Ctx, B],
    c: Branch[Ctx, C],
    d: Branch[Ctx, D],
    /,
    *,
    merge: MergeFns | None = None,
) -> Workflow[Ctx, tuple[A, B, C, D]]: ...
@overload
def parallel(
    a: Branch[Ctx, A],
    b: Branch[Ctx, B],
    c: Branch[Ctx, C],
    d: Branch[Ctx, D],
    e: Branch[Ctx, E],
    /,
    *,
    merge: MergeFns | None = None,
) -> Workflow[Ctx, tuple[A, B, C, D, E]]: ...
@overload
def parallel(
    a: Branch[Ctx, A],
    b: Branch[Ctx, B],
    c: Branch[Ctx, C],
    d: Branch[Ctx, D],
    e: Branch[Ctx, E],
    f: Branch[Ctx, F],
    /,
    *,
    merge: MergeFns | None = None,
) -> Workflow[Ctx, tuple[A, B, C, D, E, F]]: ...
@overload
def parallel(
    a: Branch[Ctx, Any],
    b: Branch[Ctx, Any],
    c: Branch[Ctx, Any],
    d: Branch[Ctx, Any],
    e: Branch[Ctx, Any],
    f: Branch[Ctx, Any],
    g: Branch[Ctx, Any],
    /,
    *more: Branch[Ctx, Any],
    merge: MergeFns | None = None,
) -> Workflow[Ctx, tuple[Any, ...]]: ...
def parallel(*branches: Any, merge: MergeFns | None = None) -> Workflow[Any, Any]:
    """Run ``branches`` concurrently; output is the tuple of their outputs, in call order.

    Each branch runs on its own deep copy of the context; their changes are
    applied to it when all succeed. Two branches that change the same key (or
    attribute) to different values, or one removing a key another changes,
    fail the run with ``PermanentError`` naming the key and the branches, so
    no write is lost in silence; ``merge={"pages": fn}`` instead sets that key
    to ``fn(values)``, the values of the branches that changed it, in call
    order. Equal values never conflict.
    """
    return parallel_part(branches, merge)
