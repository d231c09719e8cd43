"""The actor half of ``ActorSystem``: spawn, refs, supervision, death watch, singletons.

A mixin, so ``ActorSystem`` stays one object for its users while each half
stays readable; it holds no state of its own, only methods over the system's
tables (declared here for the type checker, set by ``ActorSystem.__init__``).
Every actor is started through ``ActorHost`` (hooked: exit reported to death
watch, snapshots), and forgotten here once it stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pykka

from actors import (
    ChildSpec,
    Clock,
    RestartIntensity,
    Strategy,
    Supervisor,
    SystemShutDown,
)
from runtime._children import SystemChildStarter
from runtime._death_watch import DeathWatch, Watcher
from runtime._hosting import ActorHost
from runtime._singletons import SingletonRef, Singletons
from runtime.cluster import Cluster, Ref, Registry
from runtime.workflow import qualified_name
from transport import Address, NodeDown

if TYPE_CHECKING:
    from runtime._system import ActorSystem

__all__ = ["ActorHosting"]

A = TypeVar("A", bound=pykka.Actor)


class ActorHosting:
    """Spawning and reaching actors; mixed into ``ActorSystem``."""

    name: str
    clock: Clock
    cluster: Cluster | None
    registry: Registry
    _lock: threading.Lock
    _closed: bool
    _actors: dict[str, pykka.ActorRef[Any]]  # by actor_urn, in spawn order
    _named: dict[str, pykka.ActorRef[Any]]
    _host: ActorHost
    _death_watch: DeathWatch
    _singletons: Singletons

    def _named_ref(self, path: str) -> pykka.ActorRef[Any] | None:
        with self._lock:
            return self._named.get(path)

    def _has_named(self, path: str) -> bool:
        return path in self._named  # one dict read, atomic: no lock (see LocalNode.has_named)

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise SystemShutDown(f"cannot {what}: actor system {self.name!r} is shut down")

    # -- actors ------------------------------------------------------------------------

    def spawn(
        self, actor_class: type[A], *args: Any, name: str | None = None, **kwargs: Any
    ) -> pykka.ActorRef[A]:
        """Start ``actor_class(*args, **kwargs)``; it is stopped at shutdown.

        With ``name``, the actor is reachable at ``<node>/<name>`` through
        ``ref`` from this and every other node of the cluster.
        """
        if name is not None and (not isinstance(name, str) or not name or name.startswith("$")):
            raise ValueError(
                f"spawn(name) must be a non-empty path not starting with '$', got {name!r}"
            )
        return self._spawn_hooked(actor_class, args, kwargs, name)

    def _spawn_hooked(
        self,
        actor_class: type[A],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        name: str | None,
        *,
        key: str | None = None,
        epoch: int | None = None,
        on_exit: Callable[[BaseException | None], None] | None = None,
    ) -> pykka.ActorRef[A]:
        """``spawn``, also under ``$`` paths, with a snapshot key and epoch and an exit hook."""
        with self._lock:
            self._check_open("spawn")
            if not (isinstance(actor_class, type) and issubclass(actor_class, pykka.Actor)):
                raise TypeError(
                    f"spawn(actor_class) needs a pykka Actor class, got {actor_class!r}"
                )
            if name is not None:
                old = self._named.get(name)
                if old is not None and old.is_alive():
                    raise ValueError(f"an actor named {name!r} already runs on {self.name}")
            started: list[pykka.ActorRef[Any]] = []

            def exited(error: BaseException | None) -> None:
                if started:
                    self._forget(started[0], name)
                if on_exit is not None:
                    on_exit(error)

            ref = self._host.start(
                actor_class, args, kwargs, path=name, key=key, epoch=epoch, on_exit=exited
            )
            started.append(ref)
            self._actors[ref.actor_urn] = ref
            if name is not None:
                self._named[name] = ref
        if not ref.is_alive():  # it may have exited before ``started`` held it
            self._forget(ref, name)
        return ref

    def _forget(self, ref: pykka.ActorRef[Any], name: str | None) -> None:
        """Drop a stopped actor from the tables (a long-lived system restarts many)."""
        with self._lock:
            self._actors.pop(ref.actor_urn, None)
            if name is not None and self._named.get(name) is ref:
                del self._named[name]

    def watch(self, target: Ref | Address | str | pykka.ActorRef[Any], watcher: Watcher) -> None:
        """Tell ``watcher`` one ``Terminated(address, reason)`` once ``target`` is gone.

        ``target`` is local or remote; it is gone when it stops or crashes, or
        its node is declared down or leaves; already gone: answered at once.
        ``watcher`` is an actor of this node (pykka ref or ``Ref``) or a
        callable. Inside an actor, ``runtime.watch(target)`` watches for it.
        """
        self._death_watch.watch(target, watcher)

    def unwatch(self, target: Ref | Address | str | pykka.ActorRef[Any], watcher: Watcher) -> None:
        """Cancel ``watch(target, watcher)``: nothing is told after it returns (no-op if told)."""
        self._death_watch.unwatch(target, watcher)

    def singleton(
        self,
        name: str,
        actor_class: type[pykka.Actor],
        *args: Any,
        lease: float = 3.0,
        takeover_on_down: bool = True,
    ) -> SingletonRef:
        """Keep at most one live ``actor_class(*args)`` named ``name`` cluster-wide.

        This member becomes a candidate: whichever candidate holds the fenced
        lease ``singleton/<name>`` in the shared store runs it (restored from
        its last snapshot); see README "Actors across hosts". When the holder's
        node is declared down, another candidate takes over at once; with
        ``takeover_on_down=False`` only once its ``lease`` (seconds) expired.
        Returns the stable handle (also ``singleton_ref(name)`` from any
        process on the store).
        """
        return self._singletons.host(name, actor_class, args, lease, takeover_on_down)

    def singleton_ref(self, name: str) -> SingletonRef:
        """A handle on singleton ``name`` wherever it runs (found through the store)."""
        return self._singletons.ref(name)

    def ref(self, address: str | Address) -> Ref:
        """A handle on the actor at ``node/path``, local or remote (tell, ask)."""
        target = address if isinstance(address, Address) else Address.parse(address)
        transport = self.cluster.transport if self.cluster is not None else None
        if transport is None and target.node != self.name:
            raise NodeDown(
                f"{target}: node {target.node!r} is unknown (this system is not in a cluster)"
            )
        return Ref(target, local=lambda: self._named_ref(target.path), transport=transport)

    def spawn_on(
        self,
        node: str,
        actor_class: type[pykka.Actor] | str,
        *args: Any,
        name: str,
        timeout: float = 5.0,
    ) -> Ref:
        """Start a registered actor class on ``node`` (by class or registered name).

        Raises:
            ActorNotFound: the class is not registered on that node.
            NodeDown / AskTimeout: the node is unreachable or did not answer.
        """
        class_name = actor_class if isinstance(actor_class, str) else qualified_name(actor_class)
        if node == self.name:
            cls = self.registry.actor(class_name, node=self.name)
            self.spawn(cls, *args, name=name)
            return self.ref(Address(self.name, name))
        if self.cluster is None:
            raise NodeDown(f"node {node!r} is unknown (this system is not in a cluster)")
        return self.ref(self.cluster.spawn_on(node, class_name, args, name, timeout))

    def supervise(
        self,
        children: Sequence[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: RestartIntensity | None = None,
        name: str = "supervisor",
    ) -> pykka.ActorRef[Supervisor]:
        """Start a ``Supervisor`` over ``children`` on this system's clock.

        ``name`` is the supervisor's identity in the store: a child that takes
        snapshots keeps them under ``child/<name>/<child>``, so the same
        supervisor started again (here or in another process) resumes them.
        """
        starter = SystemChildStarter(cast("ActorSystem", self), name)
        return self.spawn(
            Supervisor,
            children,
            strategy=strategy,
            intensity=intensity,
            clock=self.clock,
            starter=starter,
        )
