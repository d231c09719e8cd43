"""Supervision of long-lived actors, as in Erlang/OTP.

A ``Supervisor`` starts its children in order and restarts them when they
crash, following its strategy:

- ``ONE_FOR_ONE``: restart only the child that crashed;
- ``ONE_FOR_ALL``: stop every child (in reverse order) and restart them all;
- ``REST_FOR_ONE``: restart the crashed child and every child started after it.

Restart intensity: a supervisor that would make more than ``max_restarts``
restarts within ``period`` seconds (read from the injected clock) gives up: it
stops its children and fails with ``EscalationError``, which its own
supervisor sees as a crash (escalation), or which reaches ``on_escalate`` at
the top. A child "crashes" when an exception escapes a ``tell`` handler or
``on_start``; with ``Restart.TRANSIENT`` a normal stop is not restarted, with
``Restart.TEMPORARY`` nothing is.

Children subclass ``SupervisedActor`` so that their exits reach the supervisor
as messages (tell, never a blocking ask).

A ``ChildStarter`` starts the children it ``handles`` instead of the
supervisor; ``ActorSystem.supervise`` gives one that handles them all, and
only it can start one with a ``node`` or a ``placement`` (it runs on another
member and its exit arrives through death watch; its node going down is a
crash) or take snapshots (each start takes a new epoch in the store and
resumes from the last snapshot). A child that cannot be started counts as a
crash of that child. Strategies and intensity are the same for every child.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pykka

from actors._clock import Clock, RealClock
from actors._errors import EscalationError

__all__ = [
    "ChildHandle",
    "ChildSpec",
    "ChildStarter",
    "Restart",
    "RestartIntensity",
    "Strategy",
    "SupervisedActor",
    "Supervisor",
    "SupervisorStats",
]

log = logging.getLogger(__name__)

_STOP_TIMEOUT = 5.0


class Strategy(enum.Enum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class Restart(enum.Enum):
    PERMANENT = "permanent"  # always restarted
    TRANSIENT = "transient"  # restarted only after a crash
    TEMPORARY = "temporary"  # never restarted


@dataclass(frozen=True)
class RestartIntensity:
    """At most ``max_restarts`` restarts within ``period`` seconds (OTP's MaxR/MaxT)."""

    max_restarts: int = 3
    period: float = 5.0

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(f"max_restarts must be >= 0, got {self.max_restarts!r}")
        if self.period <= 0:
            raise ValueError(f"period must be > 0 seconds, got {self.period!r}")


@dataclass(frozen=True)
class ChildSpec:
    """How to start one child: ``actor_class(*args, **kwargs)`` under ``name``.

    ``node`` pins the child to that cluster member; ``placement`` (a
    ``PlacementStrategy``) picks one of the live members that registered the
    class at every (re)start. Without either it runs in the supervisor's process.
    """

    name: str
    actor_class: type[SupervisedActor]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    restart: Restart = Restart.PERMANENT
    node: str | None = None
    placement: Any = None

    def __post_init__(self) -> None:
        if self.node is not None and (not isinstance(self.node, str) or not self.node):
            raise ValueError(f"ChildSpec {self.name!r}: node must be a non-empty str or None")
        if self.node is not None and self.placement is not None:
            raise ValueError(f"ChildSpec {self.name!r}: give node or placement, not both")
        if self.placement is not None and not callable(getattr(self.placement, "choose", None)):
            raise TypeError(
                f"ChildSpec {self.name!r}: placement must be a PlacementStrategy "
                f"(with choose(key, candidates)), got {self.placement!r}"
            )
        if not (
            isinstance(self.actor_class, type) and issubclass(self.actor_class, SupervisedActor)
        ):
            raise TypeError(
                f"ChildSpec {self.name!r}: actor_class must subclass SupervisedActor, "
                f"got {self.actor_class!r}"
            )


@dataclass(frozen=True)
class SupervisorStats:
    """A snapshot for introspection (``actorflow status`` prints it)."""

    children: tuple[str, ...]
    restarts_total: int
    restarts_in_window: int
    strategy: Strategy


@dataclass(frozen=True)
class _ChildExit:
    name: str
    incarnation: int
    error: BaseException | None  # None: a normal stop


_Link = Callable[[_ChildExit], None]


def _tell_quietly(link: _Link, exit_: _ChildExit) -> None:
    """Report an exit; a supervisor already stopped (stopping its children) needs none."""
    with contextlib.suppress(pykka.ActorDeadError):
        link(exit_)


class ChildHandle(Protocol):
    """A child a ``ChildStarter`` started: what ``children`` answers, and how to stop it."""

    @property
    def ref(self) -> Any: ...

    def stop(self, timeout: float) -> None: ...


class ChildStarter(Protocol):
    """Starts the children a supervisor cannot start alone (see the module docstring)."""

    def handles(self, spec: ChildSpec) -> bool:
        """Whether this starter starts ``spec`` (else the supervisor starts it in-process)."""
        ...

    def start(self, spec: ChildSpec, report: Callable[[BaseException | None], None]) -> ChildHandle:
        """Start ``spec``'s child; ``report(error)`` once when it exits (None: stopped)."""
        ...


def _guard_on_start(on_start: Callable[[Any], None]) -> Callable[[Any], None]:
    @functools.wraps(on_start)
    def guarded(self: SupervisedActor) -> None:
        try:
            on_start(self)
        except Exception as exc:
            # pykka stops the actor without calling on_failure: report it ourselves.
            self._report_exit(exc)
            raise

    return guarded


class SupervisedActor(pykka.ThreadingActor):
    """Base class for actors a ``Supervisor`` can restart.

    Runs in its own thread like any pykka actor. An exception escaping a tell
    handler or ``on_start`` is reported to the supervisor as a crash; a normal
    stop is reported as an exit (which matters for ``Restart.TRANSIENT``).
    """

    _link: _Link | None = None
    _link_name: str = ""
    _incarnation: int = 0
    _exit_reported: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "on_start" in cls.__dict__:
            cls.on_start = _guard_on_start(cls.__dict__["on_start"])  # type: ignore[method-assign,assignment]

    @classmethod
    def _start_linked(
        cls, link: _Link, name: str, incarnation: int, *args: Any, **kwargs: Any
    ) -> pykka.ActorRef[Any]:
        # pykka's Actor.start, with the link set before the actor thread runs on_start.
        obj = cls(*args, **kwargs)
        obj._link, obj._link_name, obj._incarnation = link, name, incarnation
        pykka.ActorRegistry.register(obj.actor_ref)
        obj._start_actor_loop()
        return obj.actor_ref

    def _report_exit(self, error: BaseException | None) -> None:
        if self._link is not None and not self._exit_reported:
            self._exit_reported = True
            _tell_quietly(self._link, _ChildExit(self._link_name, self._incarnation, error))

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._report_exit(exception_value)

    def on_stop(self) -> None:
        self._report_exit(None)


class Supervisor(SupervisedActor):
    """Starts ``children`` in order and restarts them per ``strategy`` (see module doc).

    Ask it ``"children"`` for ``{name: ActorRef}`` of the live children, or
    ``"stats"`` for a ``SupervisorStats``.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: RestartIntensity | None = None,
        clock: Clock | None = None,
        on_escalate: Callable[[EscalationError], None] | None = None,
        starter: ChildStarter | None = None,
    ) -> None:
        super().__init__()
        names = [spec.name for spec in children]
        if len(set(names)) != len(names):
            raise ValueError(f"children must have unique names, got {names!r}")
        for spec in children:
            if (spec.node is not None or spec.placement is not None) and (
                starter is None or not starter.handles(spec)
            ):
                raise ValueError(
                    f"child {spec.name!r} runs on another node: start its supervisor "
                    "with ActorSystem.supervise (a cluster member)"
                )
        self._starter = starter
        self._handles: dict[str, ChildHandle] = {}
        self._specs = list(children)
        self._strategy = strategy
        self._intensity = intensity or RestartIntensity()
        self._clock = clock or RealClock()
        self._on_escalate = on_escalate
        self._refs: dict[str, pykka.ActorRef[Any]] = {}
        self._incarnations: dict[str, int] = collections.defaultdict(int)
        self._restarts: collections.deque[float] = collections.deque()
        self._restarts_total = 0

    def on_start(self) -> None:
        for spec in self._specs:
            self._start_child(spec)

    def on_stop(self) -> None:
        self._stop_children(self._specs)
        super().on_stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _ChildExit):
            self._on_child_exit(message)
            return None
        if message == "children":
            return dict(self._refs)
        if message == "stats":
            return self._stats()
        raise TypeError(f"supervisor got unknown message {message!r}")

    def _stats(self) -> SupervisorStats:
        self._trim_window()
        return SupervisorStats(
            tuple(self._refs), self._restarts_total, len(self._restarts), self._strategy
        )

    def _start_child(self, spec: ChildSpec) -> None:
        self._incarnations[spec.name] += 1
        me = self.actor_ref
        if self._starter is not None and self._starter.handles(spec):
            exit_of = functools.partial(_ChildExit, spec.name, self._incarnations[spec.name])
            try:
                handle = self._starter.start(
                    spec, lambda error: _tell_quietly(me.tell, exit_of(error))
                )
            except Exception as exc:  # noqa: BLE001 - a child that cannot start has crashed
                log.warning("child %r could not be started: %r", spec.name, exc)
                me.tell(exit_of(exc))
                return
            self._handles[spec.name] = handle
            self._refs[spec.name] = handle.ref
            return
        self._refs[spec.name] = spec.actor_class._start_linked(
            me.tell, spec.name, self._incarnations[spec.name], *spec.args, **dict(spec.kwargs)
        )

    def _stop_children(self, specs: Sequence[ChildSpec]) -> None:
        for spec in reversed(specs):
            ref = self._refs.pop(spec.name, None)
            if ref is None:
                continue
            self._incarnations[spec.name] += 1  # its exit report is now stale
            handle = self._handles.pop(spec.name, None)
            if handle is not None:
                try:
                    handle.stop(_STOP_TIMEOUT)
                except Exception as exc:  # noqa: BLE001 - its node may be gone: it is stopped
                    log.warning("child %r: stop failed: %r", spec.name, exc)
                continue
            try:
                ref.stop(block=True, timeout=_STOP_TIMEOUT)
            except pykka.Timeout:
                log.error("child %r did not stop within %.1fs", spec.name, _STOP_TIMEOUT)

    def _on_child_exit(self, exit_: _ChildExit) -> None:
        if exit_.incarnation != self._incarnations[exit_.name]:
            return  # an exit we caused ourselves, or from an older incarnation
        spec = next(s for s in self._specs if s.name == exit_.name)
        self._refs.pop(spec.name, None)
        self._handles.pop(spec.name, None)
        crashed = exit_.error is not None
        if crashed:
            log.warning("child %r crashed: %r", spec.name, exit_.error)
        if spec.restart is Restart.TEMPORARY or (spec.restart is Restart.TRANSIENT and not crashed):
            return
        if not self._allow_restart():
            self._escalate(spec.name, exit_.error)
            return
        index = self._specs.index(spec)
        if self._strategy is Strategy.ONE_FOR_ONE:
            affected = [spec]
        elif self._strategy is Strategy.ONE_FOR_ALL:
            affected = list(self._specs)
        else:
            affected = self._specs[index:]
        self._stop_children([s for s in affected if s is not spec])
        for s in affected:
            self._start_child(s)

    def _trim_window(self) -> None:
        horizon = self._clock.now() - self._intensity.period
        while self._restarts and self._restarts[0] <= horizon:
            self._restarts.popleft()

    def _allow_restart(self) -> bool:
        self._trim_window()
        if len(self._restarts) >= self._intensity.max_restarts:
            return False
        self._restarts.append(self._clock.now())
        self._restarts_total += 1
        return True

    def _escalate(self, child: str, cause: BaseException | None) -> None:
        self._stop_children(self._specs)
        error = EscalationError(
            f"supervisor gave up: more than {self._intensity.max_restarts} restarts within "
            f"{self._intensity.period}s (last: child {child!r})"
        )
        error.__cause__ = cause
        if self._on_escalate is not None:
            self._on_escalate(error)
        # Raising from a tell handler stops this actor and reports a crash to our parent.
        raise error
