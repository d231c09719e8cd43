"""Workflow descriptions: immutable, typed, composed with combinators.

A ``Workflow[Ctx, Out]`` describes work on a context of type ``Ctx`` that
produces an ``Out``. It does nothing by itself: ``ActorSystem.run`` compiles
it into node actors under a run coordinator. Composition validates its
arguments at once (callable, arity), so mistakes fail where they are written.

Semantics, in one place:

- ``task(fn)``: ``fn(ctx) -> out`` runs in its own node actor; it may mutate ``ctx``.
- ``a.then(b)``: ``b`` runs after ``a`` on the same context; output is ``b``'s.
- ``a.when(cond)``: ``cond(ctx)`` is evaluated on the coordinator when ``a``
  would start; false raises ``ConditionNotMet`` (the run fails), unless
  ``skip=True``, in which case ``a`` is skipped and its output is ``None``.
- ``a.parallel(b, ...)``: branches run concurrently, each on its own deep copy
  of the context; output is the tuple of branch outputs in call order (typed
  for up to 6 branches). After all succeed, each branch's context changes
  (top-level keys of a dict, or attributes of an object) are applied to the
  original. Branches that change the same key to different values (or remove
  a key another changes) fail the parallel with ``PermanentError`` naming the
  key and the branches, unless ``merge={key: fn}`` gives ``fn(values)`` to
  combine that key's values, in call order. The first failing branch fails
  the whole and cancels its siblings.
- ``a.nested(ctx_mapper, out_mapper)``: runs ``a`` on ``ctx_mapper(ctx)``;
  output is ``out_mapper(ctx, a_out)``.
- ``dynamic(factory, condition)``: at run time, when ``condition(ctx)`` holds
  (or always, without one), runs the workflow ``factory(ctx)`` returns;
  otherwise is skipped with output ``None``.
- ``.retry(policy)`` re-runs the wrapped workflow per the policy (for a task,
  the same node goes Failed -> Running); ``.monitored(*observers)`` sends the
  events of the wrapped steps to those observers too; ``.named(name)`` names it.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeAlias, TypeVar, overload

from actors import CompositionError, NodeState, WorkflowObserver
from runtime.workflow._adaptive import PlacementStrategy, Predictor
from runtime.workflow._checkpoint_strategy import CheckpointStrategy
from runtime.workflow._retry import RetryPolicy

__all__ = ["Workflow", "dynamic", "monitors", "parallel_part", "persists", "task", "tasks_of"]

Ctx = TypeVar("Ctx")
Out = TypeVar("Out")
Out2 = TypeVar("Out2")
Out3 = TypeVar("Out3")
Out4 = TypeVar("Out4")
Out5 = TypeVar("Out5")
Out6 = TypeVar("Out6")
Inner = TypeVar("Inner")
InnerOut = TypeVar("InnerOut")


def _check_callable(what: str, fn: object, arity: int) -> None:
    """Fail at composition time if ``fn`` cannot be called with ``arity`` positional args."""
    if not callable(fn):
        raise CompositionError(f"{what} must be callable, got {fn!r} ({type(fn).__name__})")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins without a signature: trust the caller
    try:
        signature.bind(*([None] * arity))
    except TypeError as exc:
        raise CompositionError(
            f"{what} must accept exactly {arity} positional argument(s); "
            f"{getattr(fn, '__qualname__', fn)!r} has signature {signature}: {exc}"
        ) from None


def _as_workflow(what: str, value: object) -> Workflow[Any, Any]:
    if isinstance(value, Workflow):
        return value
    if callable(value):
        return task(value)
    raise CompositionError(f"{what} must be a Workflow or a callable, got {value!r}")


class Workflow(Generic[Ctx, Out]):
    """Immutable description of work on a ``Ctx`` producing an ``Out`` (see module doc)."""

    name: str

    def then(self, next_step: Workflow[Ctx, Out2] | Callable[[Ctx], Out2]) -> Workflow[Ctx, Out2]:
        second = _as_workflow("then(next_step)", next_step)
        # Chains stay flat (a.then(b).then(c) is one sequence), so a 10,000-step
        # pipeline needs no deep recursion anywhere.
        steps = (self.steps if isinstance(self, Then) else (self,)) + (
            second.steps if isinstance(second, Then) else (second,)
        )
        return Then(_sequence_name(steps), steps)

    @overload
    def when(
        self, condition: Callable[[Ctx], bool], *, skip: Literal[False] = False
    ) -> Workflow[Ctx, Out]: ...
    @overload
    def when(
        self, condition: Callable[[Ctx], bool], *, skip: Literal[True]
    ) -> Workflow[Ctx, Out | None]: ...
    def when(self, condition: Callable[[Ctx], bool], *, skip: bool = False) -> Workflow[Ctx, Any]:
        _check_callable("when(condition)", condition, 1)
        return When(f"{self.name}?", self, condition, skip)

    # One overload per count of branches, so the output's tuple type follows them; none
    # overlaps another, or an Any in the context type (dict[str, Any]) makes mypy infer Any.
    @overload
    def parallel(
        self, b: Branch[Ctx, Out2], /, *, merge: MergeFns | None = None
    ) -> Workflow[Ctx, tuple[Out, Out2]]: ...
    @overload
    def parallel(
        self, b: Branch[Ctx, Out2], c: Branch[Ctx, Out3], /, *, merge: MergeFns | None = None
    ) -> Workflow[Ctx, tuple[Out, Out2, Out3]]: ...
    @overload
    def parallel(
        self,
        b: Branch[Ctx, Out2],
        c: Branch[Ctx, Out3],
        d: Branch[Ctx, Out4],
        /,
        *,
        merge: MergeFns | None = None,
    ) -> Workflow[Ctx, tuple[Out, Out2, Out3, Out4]]: ...
    @overload
    def parallel(
        self,
        b: Branch[Ctx, Out2],
        c: Branch[Ctx, Out3],
        d: Branch[Ctx, Out4],
        e: Branch[Ctx, Out5],
        /,
        *,
        merge: MergeFns | None = None,
    ) -> Workflow[Ctx, tuple[Out, Out2, Out3, Out4, Out5]]: ...
    @overload
    def parallel(
        self,
        b: Branch[Ctx, Out2],
        c: Branch[Ctx, Out3],
        d: Branch[Ctx, Out4],
        e: Branch[Ctx, Out5],
        f: Branch[Ctx, Out6],
        /,
        *,
        merge: MergeFns | None = None,
    ) -> Workflow[Ctx, tuple[Out, Out2, Out3, Out4, Out5, Out6]]: ...
    @overload
    def parallel(
        self,
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
    def parallel(self, *others: Any, merge: MergeFns | None = None) -> Workflow[Ctx, Any]:
        """Run ``self`` and ``others`` concurrently (see ``parallel``)."""
        return parallel_part((self, *others), merge)

    def nested(
        self: Workflow[Inner, InnerOut],
        ctx_mapper: Callable[[Ctx], Inner],
        out_mapper: Callable[[Ctx, InnerOut], Out2],
    ) -> Workflow[Ctx, Out2]:
        _check_callable("nested(ctx_mapper)", ctx_mapper, 1)
        _check_callable("nested(out_mapper)", out_mapper, 2)
        return Nested(f"[{self.name}]", self, ctx_mapper, out_mapper)

    def retry(self, policy: RetryPolicy) -> Workflow[Ctx, Out]:
        if not isinstance(policy, RetryPolicy):
            raise CompositionError(f"retry(policy) must be a RetryPolicy, got {policy!r}")
        return Retry(self.name, self, policy)

    def monitored(self, *observers: WorkflowObserver) -> Workflow[Ctx, Out]:
        for observer in observers:
            if not callable(getattr(observer, "on_event", None)):
                raise CompositionError(
                    f"monitored(*observers) needs objects with on_event(event), got {observer!r}"
                )
        return Monitored(self.name, self, tuple(observers))

    def checkpoint(self, strategy: CheckpointStrategy) -> Workflow[Ctx, Out]:
        """Write checkpoints for the steps inside per ``strategy`` (overrides the system's)."""
        if not isinstance(strategy, CheckpointStrategy):
            raise CompositionError(
                f"checkpoint(strategy) must be a CheckpointStrategy, got {strategy!r}"
            )
        return Checkpointed(self.name, self, strategy)

    def locked(
        self, name: str, lease: float = 30.0, *, timeout: float | None = None
    ) -> Workflow[Ctx, Out]:
        """Hold the distributed lock ``name`` while the wrapped steps run.

        The coordinator waits for the lock without blocking (at most ``timeout``
        s, then ``LockTimeout``), renews the lease every third of it, and
        releases it when the wrapped part ends. Steps inside read the fencing
        token as ``current_step().fencing_tokens[name]``.
        """
        if not isinstance(name, str) or not name:
            raise CompositionError(f"locked(name) must be a non-empty str, got {name!r}")
        if not isinstance(lease, int | float) or lease <= 0:
            raise CompositionError(f"locked(lease) must be a number > 0, got {lease!r}")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout < 0):
            raise CompositionError(f"locked(timeout) must be a number >= 0, got {timeout!r}")
        return Locked(self.name, self, name, float(lease), timeout)

    def timeout(self, seconds: float) -> Workflow[Ctx, Out]:
        """Fail with ``StepTimeout`` when the wrapped part runs longer than ``seconds``.

        Its running steps are canceled then. Unlike ``task(timeout=)`` (each
        attempt), this bounds everything inside: ``a.retry(p).timeout(60)`` is
        60 s for all attempts, ``a.timeout(60).retry(p)`` 60 s for each.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
            raise CompositionError(f"timeout(seconds) must be a number > 0, got {seconds!r}")
        return Deadline(self.name, self, float(seconds))

    def adaptive(self, strategy: PlacementStrategy) -> Workflow[Ctx, Out]:
        """Place the steps inside with ``strategy`` (e.g. ``LeastLoaded()``), not round-robin."""
        if not callable(getattr(strategy, "choose", None)):
            raise CompositionError(
                f"adaptive(strategy) needs a choose(step, candidates) method, got {strategy!r}"
            )
        return Adaptive(self.name, self, strategy)

    def predictive(self, predictor: Predictor, threshold: float = 0.9) -> Workflow[Ctx, Out]:
        """Skip this part when ``predictor`` is at least ``threshold`` sure of its output."""
        for method in ("predict", "observe"):
            if not callable(getattr(predictor, method, None)):
                raise CompositionError(
                    f"predictive(predictor) needs predict(ctx) and observe(ctx, output), "
                    f"got {predictor!r}"
                )
        if not isinstance(threshold, int | float) or not 0 < threshold <= 1:
            raise CompositionError(f"predictive(threshold) must be in (0, 1], got {threshold!r}")
        return Predictive(self.name, self, predictor, float(threshold))

    def named(self, name: str) -> Workflow[Ctx, Out]:
        if not isinstance(name, str) or not name or "/" in name:
            raise CompositionError(f"named(name) must be a non-empty str without '/', got {name!r}")
        return Named(name, self)

    def to_mermaid(self, states: Mapping[str, NodeState] | None = None) -> str:
        """A Mermaid flowchart of the static tree; ``states`` (step key -> state) colours tasks."""
        from runtime.workflow._diagram import to_mermaid  # noqa: PLC0415 - it imports this module

        return to_mermaid(self, states)

    def to_dot(self, states: Mapping[str, NodeState] | None = None) -> str:
        """The same picture as ``to_mermaid``, as Graphviz DOT (``dot -Tsvg`` renders it)."""
        from runtime.workflow._diagram import to_dot  # noqa: PLC0415 - it imports this module

        return to_dot(self, states)

    def fingerprint(self) -> str:
        """A digest of the structure (kinds, names, order): changes when the graph changes."""
        return hashlib.sha256(repr(_shape(self)).encode()).hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class Task(Workflow[Any, Any]):
    name: str
    fn: Callable[[Any], Any]
    attempt_timeout: float | None = None
    on: str | None = None  # pinned to this node; None: placed by the run


@dataclass(frozen=True, eq=False)
class Then(Workflow[Any, Any]):
    name: str
    steps: tuple[Workflow[Any, Any], ...]


def _sequence_name(steps: Sequence[Workflow[Any, Any]]) -> str:
    if len(steps) <= 4:
        return ">".join(step.name for step in steps)
    return f"{steps[0].name}>..{len(steps) - 2}..>{steps[-1].name}"


@dataclass(frozen=True, eq=False)
class When(Workflow[Any, Any]):
    name: str
    inner: Workflow[Any, Any]
    condition: Callable[[Any], bool]
    skip: bool


Branch: TypeAlias = Workflow[Ctx, Out] | Callable[[Ctx], Out]
"""A branch of ``parallel``: a workflow, or a plain ``fn(ctx) -> out`` made a task."""
MergeFns: TypeAlias = Mapping[str, Callable[[list[Any]], Any]]
"""Per context key, ``fn(values)`` combining the values the branches wrote there."""


@dataclass(frozen=True, eq=False)
class Parallel(Workflow[Any, Any]):
    name: str
    branches: tuple[Workflow[Any, Any], ...]
    merge: MergeFns = field(default_factory=dict)  # read by the engine's merge of contexts


@dataclass(frozen=True, eq=False)
class Nested(Workflow[Any, Any]):
    name: str
    inner: Workflow[Any, Any]
    ctx_mapper: Callable[[Any], Any]
    out_mapper: Callable[[Any, Any], Any]


@dataclass(frozen=True, eq=False)
class Retry(Workflow[Any, Any]):
    name: str
    inner: Workflow[Any, Any]
    policy: RetryPolicy


@dataclass(frozen=True, eq=False)
class Monitored(Workflow[Any, Any]):
    name: str
    inner: Workflow[Any, Any]
    observers: tuple[WorkflowObserver, ...] = field(default=())


@dataclass(frozen=True, eq=False)
class Checkpointed(Workflow[Any, Any]):
    name: str
    inner: Workflow[Any, Any]
    strategy: CheckpointStrategy


@dataclass(frozen=True, eq=False)
class Locked(Workflow[Any, Any]):
    name: str
    inner: Workflow[Any, Any]
    lock: str
    lease: float
    wait_timeout: float | None


@dataclass(frozen=True, eq=False)
class Deadline(Workflow[Any, Any]):
    name: str
    inner: Workflow[Any, Any]
    seconds: float


@dataclass(frozen=True, eq=False)
class Adaptive(Workflow[Any, Any]):
    name: str
    inner: Workflow[Any, Any]
    strategy: PlacementStrategy


@dataclass(frozen=True, eq=False)
class Predictive(Workflow[Any, Any]):
    name: str
    inner: Workflow[Any, Any]
    predictor: Predictor
    threshold: float


@dataclass(frozen=True, eq=False)
class Named(Workflow[Any, Any]):
    name: str
    inner: Workflow[Any, Any]


class Composite(Workflow[Any, Any]):
    """A part defined in a module of its own: it tells the tree walks what it holds.

    So a new kind of part does not add a case to ``_shape`` and ``_walk``.
    """

    def parts(self) -> tuple[Workflow[Any, Any], ...]:
        """The parts inside, in a fixed order."""
        raise NotImplementedError

    def shape_extra(self) -> tuple[Any, ...]:
        """What else the structural fingerprint must cover (e.g. a graph's edges)."""
        return ()


@dataclass(frozen=True, eq=False)
class Dynamic(Workflow[Any, Any]):
    name: str
    factory: Callable[[Any], Workflow[Any, Any]]
    condition: Callable[[Any], bool] | None


_WRAPPERS = (
    When,
    Nested,
    Retry,
    Monitored,
    Named,
    Checkpointed,
    Locked,
    Adaptive,
    Predictive,
    Deadline,
)


def _shape(wf: Workflow[Any, Any]) -> tuple[Any, ...]:
    kind = type(wf).__name__.lstrip("_")
    children: Sequence[Workflow[Any, Any]]
    extra: tuple[Any, ...] = ()
    if isinstance(wf, Then):
        children = wf.steps
    elif isinstance(wf, Parallel):
        children = wf.branches
    elif isinstance(wf, _WRAPPERS):
        children = (wf.inner,)
    elif isinstance(wf, Composite):
        children, extra = wf.parts(), wf.shape_extra()
    else:
        children = ()
    return (kind, wf.name, tuple(_shape(child) for child in children), *extra)


def _task_name(fn: Callable[..., Any]) -> str:
    name = getattr(fn, "__name__", type(fn).__name__)
    return "lambda" if name == "<lambda>" else name


@overload
def task(
    fn: Callable[[Ctx], Coroutine[Any, Any, Out]],
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    on: str | None = None,
) -> Workflow[Ctx, Out]: ...  # an async task's output is what its coroutine returns
@overload
def task(
    fn: Callable[[Ctx], Out],
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    on: str | None = None,
) -> Workflow[Ctx, Out]: ...
@overload
def task(
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    on: str | None = None,
) -> Callable[[Callable[[Ctx], Out]], Workflow[Ctx, Out]]: ...
def task(
    fn: Callable[[Any], Any] | None = None,
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    on: str | None = None,
) -> Any:
    """Turn ``fn(ctx) -> out`` into a workflow; usable as ``task(fn)``, ``@task`` or ``@task(...)``.

    Args:
        name: the step's name (default: the function's name); shown in events and reports.
        retry: a RetryPolicy for this step (same as ``task(fn).retry(policy)``).
        timeout: seconds after which a running attempt fails with ``StepTimeout``.
        on: run on this cluster node (by name) instead of where the run places it.
            The function must be registered there (module-level, ``module:qualname``).
    """

    def build(function: Callable[[Any], Any]) -> Workflow[Any, Any]:
        _check_callable("task(fn)", function, 1)
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise CompositionError(f"task(timeout) must be a number > 0, got {timeout!r}")
        step_name = name if name is not None else _task_name(function)
        if not step_name or "/" in step_name:
            raise CompositionError(f"task(name) must be non-empty without '/', got {step_name!r}")
        if on is not None and (not isinstance(on, str) or not on or "/" in on):
            raise CompositionError(f"task(on) must be a node name, got {on!r}")
        wf: Workflow[Any, Any] = Task(step_name, function, timeout, on)
        return wf.retry(retry) if retry is not None else wf

    if fn is None:
        return build
    return build(fn)


def parallel_part(branches: Sequence[object], merge: MergeFns | None) -> Parallel:
    """The ``Parallel`` part, checked; ``parallel`` and ``Workflow.parallel`` only type it."""
    if len(branches) < 2:
        raise CompositionError(f"parallel needs at least 2 branches, got {len(branches)}")
    flows = tuple(_as_workflow(f"parallel branch {i}", b) for i, b in enumerate(branches))
    if merge is None:
        merge = {}
    if not isinstance(merge, Mapping):
        raise CompositionError(f"parallel(merge) must be a mapping of key to fn, got {merge!r}")
    for key, fn in merge.items():
        if not isinstance(key, str):
            raise CompositionError(f"parallel(merge) keys must be str, got {key!r}")
        _check_callable(f"parallel(merge[{key!r}])", fn, 1)
    name = "(" + "|".join(f.name for f in flows) + ")"
    return Parallel(name, flows, MappingProxyType(dict(merge)))


def dynamic(
    factory: Callable[[Ctx], Workflow[Ctx, Out]],
    condition: Callable[[Ctx], bool] | None = None,
    *,
    name: str = "dynamic",
) -> Workflow[Ctx, Out | None]:
    """A workflow generated at run time by ``factory(ctx)``, when ``condition(ctx)`` holds."""
    _check_callable("dynamic(factory)", factory, 1)
    if condition is not None:
        _check_callable("dynamic(condition)", condition, 1)
    return Dynamic(name, factory, condition)


def _walk(wf: Workflow[Any, Any], *, opaque: tuple[type, ...] = ()) -> list[Workflow[Any, Any]]:
    """Every node of the static tree (dynamic parts are built at run time), no recursion.

    Nodes of an ``opaque`` type are listed but not walked into.
    """
    found: list[Workflow[Any, Any]] = []
    stack = [wf]
    while stack:
        node = stack.pop()
        found.append(node)
        if isinstance(node, opaque):
            continue
        if isinstance(node, Then):
            stack.extend(node.steps)
        elif isinstance(node, Parallel):
            stack.extend(node.branches)
        elif isinstance(node, _WRAPPERS):
            stack.append(node.inner)
        elif isinstance(node, Composite):
            stack.extend(node.parts())
    return found


def tasks_of(wf: Workflow[Any, Any]) -> list[Callable[[Any], Any]]:
    """The functions of every task in the static tree (what a worker must register)."""
    return [node.fn for node in _walk(wf) if isinstance(node, Task)]


def monitors(wf: Workflow[Any, Any]) -> list[WorkflowObserver]:
    """The observers of every ``.monitored`` in the static tree."""
    return [o for node in _walk(wf) if isinstance(node, Monitored) for o in node.observers]


def persists(wf: Workflow[Any, Any], default: CheckpointStrategy) -> bool:
    """Whether running ``wf`` writes checkpoints (with ``default`` as the run's strategy)."""
    if isinstance(wf, Checkpointed):
        return wf.strategy.enabled or persists(wf.inner, wf.strategy)
    if default.enabled:
        return True
    return any(isinstance(n, Checkpointed) and n.strategy.enabled for n in _walk(wf))
