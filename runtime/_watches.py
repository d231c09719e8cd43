"""Death watch across nodes: who watches which actor, and telling them once it is gone.

Watchers always live on the node that watches (``WatchService`` of that
system); a watched actor on another node only knows which *nodes* watch it.
The ``$actors`` path carries three operations for that (see docs/PROTOCOL.md):

* ``watch {path}`` (an ask): the hosting node adds the sender to the path's
  watcher nodes and answers ``{"alive": true}``, or ``{"alive": false}`` when
  no such actor runs there (the watcher gets ``NOT_FOUND`` at once);
* ``unwatch {path}`` (a tell): the sender's last watcher of it is gone;
* ``terminated {path, reason, detail}`` (a tell): the actor exited; sent once
  to every watching node, which delivers ``Terminated`` to its local watchers.

When the failure detector declares a node down (or it leaves), every watch of
an actor on it ends with ``NODE_DOWN`` (``NODE_LEFT``), and that node's
registrations here are dropped. Each watch delivers exactly one ``Terminated``:
a watch is removed under the lock by whichever of these comes first. A watch
belongs to the actor that ran at the path when it was made: one that takes the
path over while the old one's exit is not reported yet (stopped, its thread
still ending) does not inherit it.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from actors import Terminated, TerminationReason
from runtime.cluster import ACTORS_PATH, Cluster
from transport import Address, MemberEvent, NodeDown, ProtocolError

__all__ = ["Deliver", "WatchService"]

log = logging.getLogger(__name__)

Deliver = Callable[[Terminated], None]
_ASK_TIMEOUT = 10.0


class WatchService:
    """The watches of one node: local watchers, and the remote nodes watching its actors."""

    def __init__(self, node: str, cluster: Callable[[], Cluster | None]) -> None:
        self._node = node
        self._cluster = cluster
        self._lock = threading.Lock()
        self._wire = threading.Lock()  # sends watch/unwatch of remote targets in table order
        self._ids = itertools.count(1)
        self._hosted: dict[str, set[str]] = {}  # live path here -> watching nodes
        self._tokens: dict[str, int] = {}  # live path here -> the token of its start
        self._watchers: dict[Address, dict[int, Deliver]] = {}  # target -> id -> deliver
        # token -> (watching nodes, local watchers) of an actor whose path a new actor
        # took while its exit was not reported yet (stopped, its thread still ending)
        self._retired: dict[int, tuple[set[str], dict[int, Deliver]]] = {}

    # -- this node's actors ------------------------------------------------------------

    def actor_started(self, path: str) -> int:
        """Register a starting actor; returns the token its ``actor_exited`` must give."""
        token = next(self._ids)
        with self._lock:
            old = self._tokens.get(path)
            if old is not None:  # its watches are the old actor's: they end with its exit
                self._retired[old] = (
                    self._hosted.pop(path, set()),
                    self._watchers.pop(Address(self._node, path), {}),
                )
            self._hosted[path] = set()
            self._tokens[path] = token
        return token

    def actor_exited(self, path: str, token: int, error: BaseException | None) -> None:
        reason = TerminationReason.STOPPED if error is None else TerminationReason.CRASHED
        detail = "" if error is None else f"{type(error).__name__}: {error}"
        address = Address(self._node, path)
        with self._lock:
            if self._tokens.get(path) == token:
                del self._tokens[path]
                nodes = self._hosted.pop(path, set())
                watchers = self._watchers.pop(address, {})
            elif token in self._retired:  # a later actor took the path over meanwhile
                nodes, watchers = self._retired.pop(token)
            else:
                return
        self._deliver(watchers, Terminated(address, reason, detail))
        cluster = self._cluster()
        for node in nodes:
            message = {"op": "terminated", "path": path, "reason": reason.value, "detail": detail}
            try:
                if cluster is not None:
                    cluster.transport.tell(Address(node, ACTORS_PATH), message)
            except Exception as exc:  # noqa: BLE001 - that node is gone: its watches end there
                log.debug("terminated of %s not sent to %s: %s", path, node, exc)

    def is_hosted(self, path: str) -> bool:
        with self._lock:
            return path in self._hosted

    # -- watching ------------------------------------------------------------------------

    def watch(self, target: Address, deliver: Deliver) -> int:
        """Deliver one ``Terminated`` for ``target``; returns the watch's id (for unwatch)."""
        watch_id = next(self._ids)
        if target.node == self._node:
            with self._lock:
                local_alive = target.path in self._hosted
                if local_alive:
                    self._watchers.setdefault(target, {})[watch_id] = deliver
            if not local_alive:
                deliver(Terminated(target, TerminationReason.NOT_FOUND, "no such actor"))
            return watch_id
        with self._wire:  # a last unwatch of the target still on its way goes out first
            with self._lock:
                known = target in self._watchers
                self._watchers.setdefault(target, {})[watch_id] = deliver
            sent = None if known else self._send_watch(target)
        if isinstance(sent, str):
            self._fire(target, TerminationReason.NODE_DOWN, sent)
        elif sent is not None:
            sent.add_done_callback(lambda done: self._subscribed(target, done))
        return watch_id

    def unwatch(self, target: Address, watch_id: int) -> None:
        with self._wire:  # see ``watch``: the hosting node sees watch and unwatch in order
            with self._lock:
                for _nodes, retired in self._retired.values():
                    retired.pop(watch_id, None)
                watchers = self._watchers.get(target)
                if watchers is None or watchers.pop(watch_id, None) is None:
                    return
                last = not watchers
                if last:
                    del self._watchers[target]
            cluster = self._cluster()
            if last and target.node != self._node and cluster is not None:
                try:
                    cluster.transport.tell(
                        Address(target.node, ACTORS_PATH), {"op": "unwatch", "path": target.path}
                    )
                except Exception as exc:  # noqa: BLE001 - a gone node forgets its watchers anyway
                    log.debug("unwatch of %s not sent: %s", target, exc)

    def _send_watch(self, target: Address) -> concurrent.futures.Future[Any] | str:
        """Ask ``target``'s node to watch it: the answer's future, or why it is down."""
        cluster = self._cluster()
        if cluster is None:
            return "this system is not in a cluster"
        try:
            future: concurrent.futures.Future[Any] = cluster.transport.ask(
                Address(target.node, ACTORS_PATH),
                {"op": "watch", "path": target.path},
                timeout=_ASK_TIMEOUT,
            )
        except NodeDown as exc:
            return str(exc)
        return future

    def _subscribed(self, target: Address, done: concurrent.futures.Future[Any]) -> None:
        try:
            answer = done.result()
        except NodeDown as exc:
            self._fire(target, TerminationReason.NODE_DOWN, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - no answer: the watch cannot hold
            self._fire(target, TerminationReason.NOT_FOUND, f"watch not confirmed: {exc}")
            return
        if not (isinstance(answer, dict) and answer.get("alive") is True):
            self._fire(target, TerminationReason.NOT_FOUND, "no such actor")

    def _fire(self, target: Address, reason: TerminationReason, detail: str) -> None:
        with self._lock:
            watchers = self._watchers.pop(target, {})
        self._deliver(watchers, Terminated(target, reason, detail))

    @staticmethod
    def _deliver(watchers: dict[int, Deliver], message: Terminated) -> None:
        for deliver in watchers.values():
            try:
                deliver(message)
            except Exception as exc:  # noqa: BLE001 - a watcher that is gone misses it
                log.debug("Terminated for %s not delivered: %s", message.address, exc)

    # -- the wire (``$actors``) and membership ---------------------------------------------

    def on_request(self, sender: str, op: str, path: str, request: dict[str, Any]) -> Any:
        """One of ``watch``/``unwatch``/``terminated`` from ``sender``; the answer to an ask."""
        if op == "watch":
            with self._lock:
                nodes = self._hosted.get(path)
                if nodes is not None:
                    nodes.add(sender)
            return {"alive": nodes is not None}
        if op == "unwatch":
            with self._lock:
                self._hosted.get(path, set()).discard(sender)
            return None
        if op == "terminated":
            try:
                reason = TerminationReason(request.get("reason"))
            except ValueError as exc:
                raise ProtocolError(f"terminated from {sender}: bad reason {request!r}") from exc
            detail = request.get("detail", "")
            self._fire(Address(sender, path), reason, detail if isinstance(detail, str) else "")
            return None
        raise ProtocolError(f"unknown $actors operation {op!r} from {sender}")

    def on_member(self, event: MemberEvent) -> None:
        if event.status == "up":
            return
        reason = (
            TerminationReason.NODE_LEFT if event.status == "left" else TerminationReason.NODE_DOWN
        )
        with self._lock:
            targets = [t for t in self._watchers if t.node == event.node]
            for nodes in self._hosted.values():
                nodes.discard(event.node)
            for nodes, _watchers in self._retired.values():
                nodes.discard(event.node)
        for target in targets:
            self._fire(target, reason, f"node {event.node} is {event.status}")
