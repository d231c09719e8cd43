"""Where a supervised child runs, and how its (re)start takes an epoch: ``SystemChildStarter``.

``ActorSystem.supervise`` hands one to its ``Supervisor``, which starts every
child through it (hooked like any actor of the system: watchable, and
``runtime.watch`` works inside it). It starts:

* a child whose class takes snapshots: every start claims the child's key
  (``child/<supervisor>/<child>``) with ``force`` (the supervisor is the only
  authority over its child), so the new incarnation writes at a new epoch and
  the one before, wherever it still runs, is refused (``StaleEpoch``);
* a child with ``node`` or ``placement``: on that member (``$actors start``),
  at ``$child/<supervisor>/<child>/<epoch or incarnation>``, watched from here;
  its exit, or its node going down or leaving, is reported to the supervisor
  (anything but a normal stop counts as a crash). ``placement`` chooses among
  the live members that advertised the class (this one if it registered it);
  one that answers ``ActorNotFound`` anyway is skipped and the choice made again.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pykka

from actors import (
    ChildHandle,
    ChildSpec,
    ChildStarter,
    Terminated,
    TerminationReason,
    takes_snapshots,
)
from runtime._hosting import CHILD_PREFIX, actor_state_store
from runtime.cluster import ACTORS, ACTORS_PATH, Ref
from runtime.workflow import NodeLoad, qualified_name
from transport import ActorNotFound, Address, NodeDown

if TYPE_CHECKING:
    from runtime._system import ActorSystem

__all__ = ["SystemChildStarter"]

_START_TIMEOUT = 10.0
_CHILD_LEASE = 365 * 24 * 3600.0  # a child's key is fenced by epoch alone: the lease never matters


class ChildCrashed(Exception):
    """A child on another node crashed (its error there is in the message)."""


@dataclass
class _LocalChild:
    ref: pykka.ActorRef[Any]

    def stop(self, timeout: float) -> None:
        self.ref.stop(block=True, timeout=timeout)


@dataclass
class _RemoteChild:
    ref: Ref
    unwatch: Callable[[], None]
    system: ActorSystem

    def stop(self, timeout: float) -> None:
        self.unwatch()
        cluster = self.system.cluster
        if cluster is not None:
            target = self.ref.address
            cluster.transport.tell(
                Address(target.node, ACTORS_PATH), {"op": "stop", "path": target.path}
            )


class SystemChildStarter(ChildStarter):
    """Starts the children of one supervisor named ``supervisor`` (see the module docstring)."""

    def __init__(self, system: ActorSystem, supervisor: str) -> None:
        self._system = system
        self._supervisor = supervisor
        self._incarnations = itertools.count(1)

    def handles(self, spec: ChildSpec) -> bool:
        # Every child: each is then started hooked like any actor of the system
        # (watchable, ``runtime.watch`` inside it), wherever it runs.
        return True

    def key(self, spec: ChildSpec) -> str:
        return f"child/{self._supervisor}/{spec.name}"

    def start(self, spec: ChildSpec, report: Callable[[BaseException | None], None]) -> ChildHandle:
        system = self._system
        key = epoch = None
        if takes_snapshots(spec.actor_class):
            key = self.key(spec)
            epoch = actor_state_store(system).claim_actor(
                key, owner=system.owner, lease=_CHILD_LEASE, force=True
            )
        if spec.node is None and spec.placement is None:
            ref = system._spawn_hooked(
                spec.actor_class,
                spec.args,
                dict(spec.kwargs),
                None,
                key=key,
                epoch=epoch,
                on_exit=report,
            )
            return _LocalChild(ref)
        if spec.kwargs:
            raise ValueError(f"child {spec.name!r} runs on another node: pass args, not kwargs")
        path = f"{CHILD_PREFIX}{self._supervisor}/{spec.name}/{epoch or next(self._incarnations)}"
        address = self._start_remote(spec, path, key, epoch)
        return self._watched(address, report)

    def _start_remote(
        self, spec: ChildSpec, path: str, key: str | None, epoch: int | None
    ) -> Address:
        tried: set[str] = set()
        last: Exception = ActorNotFound(
            f"child {spec.name!r}: no live member registered "
            f"{qualified_name(spec.actor_class)!r} (register_actor, or --app on the nodes)"
        )
        while True:
            node = self._choose(spec, tried)
            if node is None:
                raise last
            try:
                return self._start_on(node, spec, path, key, epoch)
            except (ActorNotFound, NodeDown) as exc:
                if spec.node is not None:
                    raise
                tried.add(node)
                last = exc

    def _choose(self, spec: ChildSpec, tried: set[str]) -> str | None:
        if spec.node is not None:
            return spec.node
        system, class_name = self._system, qualified_name(spec.actor_class)
        # The live members that advertised the class, this one if it registered it.
        holders = set(system.cluster.holders(ACTORS, class_name) if system.cluster else ())
        if system.registry.has_actor(class_name):
            holders.add(system.name)
        candidates = [NodeLoad(n) for n in sorted(holders - tried)]
        if not candidates:
            return None
        chosen: str = spec.placement.choose(spec.name, candidates)
        return chosen

    def _start_on(
        self, node: str, spec: ChildSpec, path: str, key: str | None, epoch: int | None
    ) -> Address:
        system = self._system
        class_name = qualified_name(spec.actor_class)
        if node == system.name:
            cls = system.registry.actor(class_name, node=node)
            system._spawn_hooked(cls, spec.args, {}, path, key=key, epoch=epoch)
            return Address(node, path)
        if system.cluster is None:
            raise NodeDown(f"node {node!r} is unknown (this system is not in a cluster)")
        request = {
            "op": "start",
            "class": class_name,
            "args": list(spec.args),
            "path": path,
            "key": key,
            "epoch": epoch,
        }
        actors = Address(node, ACTORS_PATH)
        future = system.cluster.transport.ask(actors, request, timeout=_START_TIMEOUT)
        try:
            address: Address = future.result(_START_TIMEOUT + 1.0)
        except (ActorNotFound, NodeDown):
            raise  # not started there, or that node is gone with it
        except Exception:
            # No answer in time: that node may start it yet, and nobody would watch
            # it. A stop queued behind the start ends it (the start counts as a crash).
            self._stop_quietly(Address(node, path))
            raise
        return address

    def _watched(
        self, address: Address, report: Callable[[BaseException | None], None]
    ) -> _RemoteChild:
        def on_terminated(message: Terminated) -> None:
            text = f"child at {address}: {message.reason.value} {message.detail}".strip()
            if message.reason is TerminationReason.NOT_FOUND:
                # Not confirmed (no answer in time) is not gone: it would run on, unwatched,
                # beside its replacement. A stop ends it if it still runs.
                self._stop_quietly(address)
            if message.reason in (TerminationReason.NODE_DOWN, TerminationReason.NODE_LEFT):
                report(NodeDown(text))
            elif message.reason.is_crash:
                report(ChildCrashed(text))
            else:
                report(None)

        system = self._system
        watch_id = system._watches.watch(address, on_terminated)
        return _RemoteChild(
            system.ref(address), lambda: system._watches.unwatch(address, watch_id), system
        )

    def _stop_quietly(self, address: Address) -> None:
        cluster = self._system.cluster
        if cluster is not None and address.node != self._system.name:
            with contextlib.suppress(Exception):
                cluster.transport.tell(
                    Address(address.node, ACTORS_PATH), {"op": "stop", "path": address.path}
                )
