"""Death watch and snapshots at the actor level: ``Terminated``, and starting an actor hooked.

``start_hooked`` starts any pykka actor class the way ``Actor.start`` does,
with three hooks installed on the instance before its thread runs:

* ``on_exit(error)`` once its thread ends: ``None`` for a normal stop, the
  exception for a crash (one escaping ``on_start`` or a tell handler);
* ``restore``: a state handed to ``actor.restore(state)`` before ``on_start``
  (from the last snapshot);
* ``persist(state)`` with ``actor.snapshot()`` after every ``snapshot_every``
  handled messages, before an ask is answered: an answered message is in the
  snapshot that ``persist`` returned from. ``persist`` raising (``StaleEpoch``:
  a newer incarnation took over) stops the actor: a zombie must not go on.

An actor opts in to snapshots by defining both ``snapshot() -> state`` and
``restore(state)`` (see ``takes_snapshots``), and may set a class attribute
``snapshot_every = N`` to save after every N-th message instead; the state must be a value the
store codec encodes (msgpack types, tuples, registered persistables).
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka
from pykka import messages

from transport import Address

__all__ = [
    "ActorHooks",
    "Terminated",
    "TerminationReason",
    "current_context",
    "current_epoch",
    "start_hooked",
    "takes_snapshots",
]

log = logging.getLogger(__name__)


class TerminationReason(enum.Enum):
    STOPPED = "stopped"  # a normal stop
    CRASHED = "crashed"  # an exception escaped on_start or a tell handler
    NODE_DOWN = "node_down"  # its node was declared down by the failure detector
    NODE_LEFT = "node_left"  # its node left the cluster
    NOT_FOUND = "not_found"  # it was already gone (or never existed) when watched

    @property
    def is_crash(self) -> bool:
        """Whether a supervisor counts it as a crash (anything but a normal stop)."""
        return self is not TerminationReason.STOPPED


@dataclass(frozen=True)
class Terminated:
    """The watched actor at ``address`` is gone; sent once per watch to the watcher."""

    address: Address
    reason: TerminationReason
    detail: str = ""  # the crash's error, or the node event, as text


_NO_STATE: Any = object()


@dataclass(frozen=True)
class ActorHooks:
    """What ``start_hooked`` installs (see the module docstring)."""

    on_exit: Callable[[BaseException | None], None]
    restore: Any = _NO_STATE
    persist: Callable[[Any], None] | None = None
    snapshot_every: int = 1
    context: Any = None  # what ``current_context()`` returns on the actor's thread
    epoch: int | None = None  # what ``current_epoch()`` returns on the actor's thread


def takes_snapshots(cls: type) -> bool:
    """Whether ``cls`` opted in to snapshots (defines ``snapshot`` and ``restore``)."""
    return callable(getattr(cls, "snapshot", None)) and callable(getattr(cls, "restore", None))


_local = threading.local()


def current_context() -> tuple[Any, pykka.ActorRef[Any]] | None:
    """``(context, ref)`` of the hooked actor whose thread calls this; None elsewhere."""
    found: tuple[Any, pykka.ActorRef[Any]] | None = getattr(_local, "actor", None)
    return found


def current_epoch() -> int | None:
    """The epoch (fencing token) of the incarnation whose thread calls this.

    Set for a snapshotting child and a singleton: pass it to a resource the
    actor writes, so that resource can refuse an older incarnation. None elsewhere.
    """
    epoch: int | None = getattr(_local, "epoch", None)
    return epoch


def start_hooked(
    cls: type[pykka.Actor], args: Any, kwargs: Any, hooks: ActorHooks
) -> pykka.ActorRef[Any]:
    """``cls(*args, **kwargs)`` started like ``Actor.start``, with ``hooks`` installed."""
    obj = cls(*args, **kwargs)
    if hooks.restore is not _NO_STATE:
        obj.restore(hooks.restore)  # type: ignore[attr-defined]
    errors: list[BaseException] = []
    handle_failure = obj._handle_failure
    handle_receive = obj._handle_receive
    actor_loop = obj._actor_loop
    handled = [0]

    def failed(kind: Any, value: BaseException | None, tb: Any) -> None:
        if value is not None and not errors:
            errors.append(value)
        handle_failure(kind, value, tb)

    def receive(message: Any) -> Any:
        answer = handle_receive(message)
        if hooks.persist is None or isinstance(message, messages._ActorStop):
            return answer
        handled[0] += 1
        if handled[0] % hooks.snapshot_every == 0:
            try:
                hooks.persist(obj.snapshot())  # type: ignore[attr-defined]
            except Exception as exc:
                log.error("%s: snapshot refused, stopping it: %s", obj, exc)
                obj.actor_ref.tell(messages._ActorStop())
                errors.append(exc)
                raise
        return answer

    def loop() -> None:
        _local.actor = (hooks.context, obj.actor_ref)
        _local.epoch = hooks.epoch
        try:
            actor_loop()
        finally:
            try:
                hooks.on_exit(errors[0] if errors else None)
            except Exception:
                log.exception("exit hook of %s raised", obj)

    obj._handle_failure = failed  # type: ignore[method-assign,assignment]
    if hooks.persist is not None:
        obj._handle_receive = receive  # type: ignore[method-assign]
    obj._actor_loop = loop  # type: ignore[method-assign]
    pykka.ActorRegistry.register(obj.actor_ref)
    obj._start_actor_loop()
    return obj.actor_ref
