"""Actors this system hosts: started hooked (death watch, snapshots), and started for peers.

Every actor ``ActorSystem.spawn`` starts goes through ``ActorHost.start``: it is
registered with the ``WatchService`` under its path (its name, or
``$anon/<n>``) before its thread runs, and its exit is reported there. An
actor started with a ``key`` and an ``epoch`` restores the key's last snapshot
before ``on_start`` and saves one after every message (every
``snapshot_every`` messages, a class attribute), fenced by the epoch
(``runtime.store._actor_state``).

The ``$actors`` path also carries ``start {class, args, path, key, epoch}``
(an ask: start a registered class here, answered with its ``Address``) and
``stop {path}`` (a tell), which ``ActorSystem.supervise`` uses for children on
other nodes. A child started so is stopped when the node that asked for it is
declared down or leaves: its supervisor is gone with it, or restarts it
elsewhere at a new epoch.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pykka

from actors import ActorHooks, PersistenceError, start_hooked, takes_snapshots
from runtime._watches import WatchService
from runtime.cluster import require
from runtime.store import ActorStateStore, decode_value, encode_value
from transport import ActorNotFound, Address, MemberEvent, ProtocolError

if TYPE_CHECKING:
    from runtime._system import ActorSystem

__all__ = ["CHILD_PREFIX", "ActorHost", "actor_state_store", "snapshot_every"]

log = logging.getLogger(__name__)

_NO_STATE: Any = ActorHooks(on_exit=lambda _e: None).restore
_MEMBERS_ONLY = frozenset({"watch", "start", "terminated"})
CHILD_PREFIX = "$child/"  # where ``$actors start`` puts children, and all ``stop`` may reach


def snapshot_every(actor_class: type) -> int:
    """The class's ``snapshot_every`` (messages between snapshots, default 1), checked."""
    every = getattr(actor_class, "snapshot_every", 1)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(
            f"{actor_class.__qualname__}.snapshot_every must be an int >= 1, got {every!r}"
        )
    return every


def actor_state_store(system: ActorSystem) -> ActorStateStore:
    """The system's store, as an ``ActorStateStore`` (snapshots, leases); else a clear error."""
    store = system.store
    if not isinstance(store, ActorStateStore):
        raise PersistenceError(
            f"store {store!r} keeps no actor state (claim_actor, save_snapshot...): "
            "snapshots and singletons need a store implementing ActorStateStore"
        )
    return store


class ActorHost:
    """Starts this system's actors hooked, and answers ``$actors`` requests of peers."""

    def __init__(self, system: ActorSystem, watches: WatchService) -> None:
        self._system = system
        self.watches = watches
        self._anonymous = itertools.count(1)
        self._paths: dict[str, str] = {}  # pykka actor_urn -> path (for watch by pykka ref)
        self._parents: dict[str, str] = {}  # path -> the node that asked for it (``start``)
        self._lock = threading.Lock()

    def start(
        self,
        actor_class: type[pykka.Actor],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        path: str | None,
        key: str | None = None,
        epoch: int | None = None,
        on_exit: Callable[[BaseException | None], None] | None = None,
    ) -> pykka.ActorRef[Any]:
        """Start ``actor_class`` hooked (called by ``spawn`` under the system's lock)."""
        path = path or f"$anon/{next(self._anonymous)}"
        restore, persist = _NO_STATE, None
        if key is not None and epoch is not None and takes_snapshots(actor_class):
            restore, persist = self._snapshots(key, epoch)
        watches, paths = self.watches, self._paths
        started: list[str] = []

        def exited(error: BaseException | None) -> None:
            watches.actor_exited(path, token, error)
            if started:
                paths.pop(started[0], None)
            if on_exit is not None:
                on_exit(error)

        hooks = ActorHooks(
            exited,
            restore=restore,
            persist=persist,
            snapshot_every=snapshot_every(actor_class),
            context=self._system,
            epoch=epoch,
        )
        token = watches.actor_started(path)
        try:
            ref = start_hooked(actor_class, args, kwargs, hooks)
        except BaseException as exc:  # its constructor or restore raised: it never ran
            watches.actor_exited(path, token, exc)
            raise
        started.append(ref.actor_urn)
        self._paths[ref.actor_urn] = path
        if not watches.is_hosted(path):  # it exited before ``started`` held its urn
            self._paths.pop(ref.actor_urn, None)
        return ref

    def path_of(self, ref: pykka.ActorRef[Any]) -> str | None:
        return self._paths.get(ref.actor_urn)

    def _snapshots(self, key: str, epoch: int) -> tuple[Any, Callable[[Any], None]]:
        store = actor_state_store(self._system)
        snapshot = store.load_snapshot(key)
        what = f"actor {key} snapshot"
        restore = _NO_STATE if snapshot is None else decode_value(snapshot.state, what=what)

        def persist(state: Any) -> None:
            store.save_snapshot(key, epoch=epoch, state=encode_value(state, what=what))

        return restore, persist

    # -- ``$actors`` ------------------------------------------------------------------------

    def request(self, sender: str, request: dict[str, Any]) -> Any:
        op = request["op"]
        if op in _MEMBERS_ONLY and not self._is_member(sender):
            # A client is never told anything but answers, and never declared down:
            # a watch or a child of its could neither be delivered nor cleaned up.
            raise ProtocolError(f"$actors {op} from {sender}: only a cluster member may send it")
        if op == "start":
            return self._start_for(sender, request)
        if op == "stop":
            self._stop_for(_child_path(sender, require(request, {"path": str}, "stop")["path"]))
            return None
        fields = require(request, {"path": str}, f"$actors {op}")
        return self.watches.on_request(sender, op, fields["path"], request)

    def _is_member(self, sender: str) -> bool:
        cluster = self._system.cluster
        if cluster is None:
            return False
        member = cluster.transport.members().get(sender)
        return member is not None and member.status == "up"

    def _start_for(self, sender: str, request: dict[str, Any]) -> Address:
        spec = require(request, {"class": str, "args": list, "path": str}, "start")
        key, epoch = request.get("key"), request.get("epoch")
        if not (key is None or isinstance(key, str)) or not (
            epoch is None or (isinstance(epoch, int) and not isinstance(epoch, bool))
        ):
            raise ProtocolError(f"start from {sender}: bad key or epoch in {request!r}")
        cls = self._system.registry.actor(spec["class"], node=self._system.name)
        path = _child_path(sender, spec["path"])
        parents, lock = self._parents, self._lock

        def exited(_error: BaseException | None) -> None:
            with lock:
                if parents.get(path) == sender:
                    del parents[path]

        with lock:
            parents[path] = sender
        try:
            self._system._spawn_hooked(
                cls, spec["args"], {}, path, key=key, epoch=epoch, on_exit=exited
            )
        except BaseException:
            exited(None)
            raise
        return Address(self._system.name, path)

    def on_member(self, event: MemberEvent) -> None:
        """Stop the children a node that went down or left started here (no orphans).

        Its supervisor, if it lives on elsewhere, sees them gone with their
        node's link and restarts them at a new epoch anyway.
        """
        if event.status == "up":
            return
        with self._lock:
            orphans = [path for path, node in self._parents.items() if node == event.node]
        for path in orphans:
            ref = self._system._named_ref(path)
            if ref is not None:
                log.info(
                    "stopping %s: node %s that started it is %s", path, event.node, event.status
                )
                ref.stop(block=False)

    def _stop_for(self, path: str) -> None:
        ref = self._system._named_ref(path)
        if ref is None:
            raise ActorNotFound(f"no actor at {self._system.name}/{path}")
        ref.stop(block=False)


def _child_path(sender: str, path: str) -> str:
    """``path`` if a child's: ``start`` and ``stop`` never reach a user's or a singleton's actor."""
    if not path.startswith(CHILD_PREFIX) or path == CHILD_PREFIX:
        raise ProtocolError(
            f"$actors start/stop from {sender}: path {path!r} is not under {CHILD_PREFIX!r}"
        )
    return path
