"""``ActorSystem.watch`` / ``unwatch``, and ``watch`` / ``unwatch`` from inside an actor.

A target is a ``Ref``, an ``Address`` (or ``"node/path"``), or a pykka ref of
an actor this system spawned; a watcher is a pykka ref or a ``Ref`` of an
actor on this node (it is told ``Terminated``), or a callable taking one. A
callable runs on whichever thread learns of the exit (the exiting actor's, or
a transport thread): it must return quickly and not block. Watching the same
target with the same watcher twice still delivers once. The watches of an
actor watcher this system spawned end when it does (a watcher that stopped is
told nothing): short-lived watchers of a long-lived target leave nothing behind.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
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
        self._ids: dict[tuple[Address, Any], _Entry] = {}  # (target, watcher) -> its watch
        self._guards: dict[Any, _Guard] = {}  # an actor watcher's identity -> its guard

    def watch(self, target: Any, watcher: Watcher) -> None:
        address = self._address(target)
        identity = _identity(watcher)
        key = (address, identity)
        deliver = self._deliverer(watcher)
        entry = _Entry()

        def once(message: Terminated) -> None:
            with self._lock:
                if self._ids.get(key) is not entry:
                    return  # unwatched meanwhile: nothing after unwatch returned
                del self._ids[key]
                done = self._forget_target(identity, address)
            if done is not None:
                self._watches.unwatch(done.own, done.watch_id)
            deliver(message)

        with self._lock:
            if key in self._ids:
                return
            self._ids[key] = entry  # before the watch: a NOT_FOUND fired at once finds it
        watch_id = self._watches.watch(address, once)
        with self._lock:
            current = self._ids.get(key) is entry
            if current:
                entry.watch_id = watch_id
                guard = self._guards.get(identity)
                if guard is not None:
                    guard.targets.add(address)
        if not current:  # fired at once, or unwatched before it had its id
            self._watches.unwatch(address, watch_id)  # a no-op once fired
        elif guard is None:
            self._guard(watcher, identity, address)

    def _guard(self, watcher: Watcher, identity: Any, target: Address) -> None:
        """End ``watcher``'s watches when it exits, if it is an actor this system hosts."""
        if isinstance(watcher, pykka.ActorRef):
            path = self._system._host.path_of(watcher)
            if path is None:
                return  # not started by this system: its exit is not known here
            own = Address(self._system.name, path)
        elif isinstance(watcher, Ref):
            own = watcher.address
        else:
            return  # a callable: it lives as long as its owner wants
        guard = _Guard(own, {target})
        with self._lock:
            self._guards[identity] = guard
        watch_id = self._watches.watch(own, lambda _gone: self._watcher_exited(identity, guard))
        with self._lock:
            guard.watch_id = watch_id
            unneeded = self._guards.get(identity) is not guard  # its targets all fired meanwhile
        if unneeded:
            self._watches.unwatch(own, watch_id)

    def _watcher_exited(self, identity: Any, guard: _Guard) -> None:
        with self._lock:
            if self._guards.get(identity) is not guard:
                return
            del self._guards[identity]
            entries = [(t, self._ids.pop((t, identity), None)) for t in guard.targets]
        for target, entry in entries:
            if entry is not None and entry.watch_id:
                self._watches.unwatch(target, entry.watch_id)

    def _forget_target(self, identity: Any, target: Address) -> _Guard | None:
        """Under the lock: ``target`` no longer watched; the guard to cancel if it was the last."""
        guard = self._guards.get(identity)
        if guard is None:
            return None
        guard.targets.discard(target)
        if guard.targets:
            return None
        del self._guards[identity]
        return guard if guard.watch_id else None

    def unwatch(self, target: Any, watcher: Watcher) -> None:
        address = self._address(target)
        identity = _identity(watcher)
        with self._lock:
            entry = self._ids.pop((address, identity), None)
            done = self._forget_target(identity, address) if entry is not None else None
        if entry is not None and entry.watch_id:
            self._watches.unwatch(address, entry.watch_id)
        if done is not None:
            self._watches.unwatch(done.own, done.watch_id)

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


class _Entry:
    """One watch of a (target, watcher) pair; its ``WatchService`` id once known (0 before)."""

    watch_id = 0


@dataclass
class _Guard:
    """The watch of an actor watcher's own exit, and the targets it watches meanwhile."""

    own: Address
    targets: set[Address]
    watch_id: int = 0


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
