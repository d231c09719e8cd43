"""``ActorSystem.watch`` / ``unwatch``, and ``watch`` / ``unwatch`` from inside an actor.

A target is a ``Ref``, an ``Address`` (or ``"node/path"``), or a pykka ref of
an actor this system spawned; a watcher is a pykka ref or a ``Ref`` of an
actor on this node (it is told ``Terminated``), or a callable taking one. A
callable runs on whichever thread learns of the exit (the exiting actor's, or
a transport thread): it must return quickly and not block. Watching the same
target with the same watcher twice still delivers once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pykka

from actors import Terminated, current_context
from runtime._watches import WatchService
from runtime.cluster import Ref
from transport import Address

if TYPE_CHECKING:
    from runtime._system import ActorSystem

__all__ = ["DeathWatch", "unwatch", "watch"]

Watcher = pykka.ActorRef[Any] | Ref | Callable[[Terminated], None]


class DeathWatch:
    """Maps (target, watcher) pairs to the ``WatchService``'s watch ids."""

    def __init__(self, system: ActorSystem, watches: WatchService) -> None:
        self._system = system
        self._watches = watches
        self._lock = threading.Lock()
        self._ids: dict[tuple[Address, Any], int] = {}

    def watch(self, target: Any, watcher: Watcher) -> None:
        address = self._address(target)
        key = (address, _identity(watcher))
        deliver = self._deliverer(watcher)

        def once(message: Terminated) -> None:
            with self._lock:
                self._ids.pop(key, None)
            deliver(message)

        with self._lock:
            if key in self._ids:
                return
            self._ids[key] = 0  # reserved: a NOT_FOUND fired at once pops it
        watch_id = self._watches.watch(address, once)
        with self._lock:
            if key in self._ids:
                self._ids[key] = watch_id

    def unwatch(self, target: Any, watcher: Watcher) -> None:
        address = self._address(target)
        with self._lock:
            watch_id = self._ids.pop((address, _identity(watcher)), None)
        if watch_id:
            self._watches.unwatch(address, watch_id)

    def _address(self, target: Any) -> Address:
        if isinstance(target, Ref):
            return target.address
        if isinstance(target, Address):
            return target
        if isinstance(target, str):
            return Address.parse(target)
        if isinstance(target, pykka.ActorRef):
            path = self._system._host.path_of(target)
            # An actor this system never started cannot be watched: it is "not found".
            return Address(self._system.name, path or f"$unknown/{target.actor_urn}")
        raise TypeError(f"watch target must be a Ref, an Address or a pykka ref, got {target!r}")

    def _deliverer(self, watcher: Watcher) -> Callable[[Terminated], None]:
        if isinstance(watcher, pykka.ActorRef):
            return watcher.tell
        if isinstance(watcher, Ref):
            if watcher.address.node != self._system.name:
                raise ValueError(
                    f"watcher {watcher.address} is on another node: watch from the system "
                    "where the watcher runs"
                )
            path, system = watcher.address.path, self._system

            def to_named(message: Terminated) -> None:
                # Straight into its mailbox: a Terminated is not a wire value.
                ref = system._named_ref(path)
                if ref is not None:
                    ref.tell(message)

            return to_named
        if callable(watcher):
            return watcher
        raise TypeError(f"watcher must be a pykka ref, a Ref or a callable, got {watcher!r}")


def _identity(watcher: Watcher) -> Any:
    if isinstance(watcher, pykka.ActorRef):
        return watcher.actor_urn
    if isinstance(watcher, Ref):
        return watcher.address
    return watcher


def _current() -> tuple[ActorSystem, pykka.ActorRef[Any]]:
    found = current_context()
    if found is None or found[0] is None:
        raise RuntimeError(
            "watch()/unwatch() without a watcher work only inside an actor spawned by an "
            "ActorSystem; elsewhere call system.watch(target, watcher)"
        )
    system: ActorSystem = found[0]
    return system, found[1]


def watch(target: Any) -> None:
    """Inside an actor: be told ``Terminated`` once ``target`` is gone."""
    system, me = _current()
    system.watch(target, me)


def unwatch(target: Any) -> None:
    """Inside an actor: cancel ``watch(target)``."""
    system, me = _current()
    system.unwatch(target, me)
