"""``map_items``: one step per item of a sequence read from the context at run time.

Written instead of ``parallel(*[task(f, name=f"f-{i}").nested(...) ...])``,
whose width is fixed when the workflow is composed. The items are read on the
coordinator when the part starts; each item's part runs on its own deep copy
of the item as its context, under a step key that carries the item's index
(``fetch[0]``, ``fetch[1]``...), so checkpoints, retries, placement and
cancellation treat each item as a step like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, overload

from actors import CompositionError
from runtime.workflow._workflow import Composite, Workflow, _as_workflow, _check_callable
from transport import WorkflowError

__all__ = ["ItemsFailed", "MapItems", "OnFailure", "map_items"]

Ctx = TypeVar("Ctx")
Item = TypeVar("Item")
Out = TypeVar("Out")

OnFailure = Literal["stop", "collect"]
_POLICIES: tuple[OnFailure, ...] = ("stop", "collect")
_LISTED = 10  # failures spelled out in the message; all of them are in ``failures``


class ItemsFailed(WorkflowError):
    """Items of a ``map_items(..., on_failure="collect")`` failed after every item ran.

    ``failures`` maps each failed item's index to its error; ``outputs`` holds
    every item's output in item order (``None`` where the item failed), so a
    caller can see what did complete. A resumed run reruns only the failed items.
    """

    def __init__(
        self, name: str, total: int, failures: Mapping[int, BaseException], outputs: list[Any]
    ) -> None:
        self.name = name
        self.total = total
        self.failures = dict(sorted(failures.items()))
        self.outputs = outputs
        listed = "; ".join(
            f"[{index}] {type(error).__name__}: {error}"
            for index, error in list(self.failures.items())[:_LISTED]
        )
        more = len(self.failures) - _LISTED
        tail = f"; and {more} more" if more > 0 else ""
        super().__init__(f"{name}: {len(self.failures)} of {total} items failed: {listed}{tail}")


ItemsFailed.__module__ = "runtime"  # named like every other error, whatever its module


@dataclass(frozen=True, eq=False)
class MapItems(Composite):
    """The part ``map_items`` returns (see module doc)."""

    name: str
    inner: Workflow[Any, Any]  # the part run once per item, on the item
    items: Callable[[Any], Sequence[Any]]
    on_failure: OnFailure

    def parts(self) -> tuple[Workflow[Any, Any], ...]:
        """Walks (tasks_of, monitors, persists) and fingerprints see the per-item part."""
        return (self.inner,)


@overload
def map_items(
    items: Callable[[Ctx], Sequence[Item]],
    step: Callable[[Item], Coroutine[Any, Any, Out]],
    *,
    on_failure: OnFailure = "stop",
    name: str | None = None,
) -> Workflow[Ctx, list[Out]]: ...  # an async step's output is what its coroutine returns
@overload
def map_items(
    items: Callable[[Ctx], Sequence[Item]],
    step: Workflow[Item, Out] | Callable[[Item], Out],
    *,
    on_failure: OnFailure = "stop",
    name: str | None = None,
) -> Workflow[Ctx, list[Out]]: ...
def map_items(
    items: Callable[[Any], Sequence[Any]],
    step: Workflow[Any, Any] | Callable[[Any], Any],
    *,
    on_failure: OnFailure = "stop",
    name: str | None = None,
) -> Workflow[Any, Any]:
    """Run ``step`` once per item of ``items(ctx)``; output is the list of outputs in item order.

    Args:
        items: reads the items from the context, on the coordinator, when the map starts.
        step: a workflow (or ``fn(item) -> out``) run on a deep copy of each item as
            its context; its changes to the item are not applied to ``ctx``.
        on_failure: ``"stop"``: the first failing item fails the map and cancels the
            others (like ``parallel``); ``"collect"``: every item runs, then the map
            fails with ``ItemsFailed`` naming each failed item and its error.
        name: the part's name (default: the step's); item steps are keyed
            ``<task name>[<index>]`` whatever it is.
    """
    _check_callable("map_items(items)", items, 1)
    inner = _as_workflow("map_items(step)", step)
    if on_failure not in _POLICIES:
        raise CompositionError(
            f"map_items(on_failure) must be one of {_POLICIES}, got {on_failure!r}"
        )
    part_name = name if name is not None else f"map({inner.name})"
    if not isinstance(part_name, str) or not part_name or "/" in part_name:
        raise CompositionError(f"map_items(name) must be non-empty without '/', got {name!r}")
    return MapItems(part_name, inner, items, on_failure)
