"""Cluster singletons: at most one live instance per name, re-placed when its node dies.

Every member that calls ``ActorSystem.singleton(name, cls, ...)`` is a
candidate and runs a keeper thread. The one decision that matters, who runs
it, is a fenced lease in the shared store (``runtime.store._actor_state``),
key ``singleton/<name>``, owner ``<node>/<owner id>``:

* a candidate that claims the lease (free, expired, or its own) starts the
  instance at ``$singleton/<name>`` with the new epoch; it restores the last
  snapshot and writes new ones at that epoch;
* the holder renews every ``lease / 3``; when a renew is refused
  (``StaleEpoch``) or it cannot renew for about the lease, it stops its
  instance before another candidate can claim an expired lease;
* when the failure detector declares the holder's node down (or it leaves),
  each candidate tries a takeover at the epoch it saw (``if_epoch``): exactly
  one wins, within the detector's bound plus one store write, without waiting
  for the lease. A holder that is alive but cut off keeps running until its
  next renew is refused (at most ``lease / 3``); its snapshot writes, and any
  resource that checks the epoch as a fencing token, refuse it from the takeover on.
  With ``takeover_on_down=False`` candidates wait for the lease to expire
  instead: failover takes up to the lease, but a partition alone never runs
  two (the holder stops itself at 2/3 of a lease it could not renew).

``SingletonRef`` finds the instance through the store (the lease's owner
node) and re-resolves when the node it used is gone.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import pykka

from actors import PersistenceError, StaleEpoch
from runtime._hosting import actor_state_store
from transport import ActorNotFound, Address, AskTimeout, MemberEvent, NodeDown

if TYPE_CHECKING:
    from runtime._system import ActorSystem

__all__ = ["SingletonRef", "Singletons"]

log = logging.getLogger(__name__)

_RETRY_INTERVAL = 0.05


def singleton_key(name: str) -> str:
    return f"singleton/{name}"


def singleton_path(name: str) -> str:
    return f"$singleton/{name}"


class SingletonRef:
    """A stable handle on singleton ``name``: ``tell``/``ask`` reach it wherever it runs."""

    def __init__(self, system: ActorSystem, name: str) -> None:
        self._system = system
        self.name = name

    def __repr__(self) -> str:
        return f"<SingletonRef {self.name}>"

    def locate(self) -> Address | None:
        """Where it runs now, per the store's lease (None: nobody holds it)."""
        lease = actor_state_store(self._system).actor_lease(singleton_key(self.name))
        if lease is None or lease.owner is None:
            return None
        return Address(lease.owner.partition("/")[0], singleton_path(self.name))

    def epoch(self) -> int | None:
        """The current epoch of its lease: a fencing token for what the instance writes."""
        lease = actor_state_store(self._system).actor_lease(singleton_key(self.name))
        return None if lease is None else lease.epoch

    def tell(self, message: Any) -> None:
        """Send to the current instance (ActorNotFound while none runs)."""
        address = self.locate()
        if address is None:
            raise ActorNotFound(f"singleton {self.name!r} is not running anywhere")
        self._system.ref(address).tell(message)

    def ask(self, message: Any, *, timeout: float) -> Any:
        """Ask the current instance; while it is being re-placed, retry until ``timeout``.

        Retried only when the instance is not found or its node is down: a
        message its dead node had already handled may then be handled again.
        """
        deadline = time.monotonic() + timeout
        last: Exception = AskTimeout(f"singleton {self.name!r}: no instance within {timeout}s")
        while (remaining := deadline - time.monotonic()) > 0:
            address = self.locate()
            if address is not None:
                try:
                    return self._system.ref(address).ask(message, timeout=remaining)
                except (ActorNotFound, NodeDown) as exc:
                    last = exc
            time.sleep(min(_RETRY_INTERVAL, max(0.0, deadline - time.monotonic())))
        raise last


class _Keeper:
    """One candidate's thread for one singleton (see the module docstring).

    A watchdog timer, re-armed by every successful renew, stops the instance
    at two thirds of the lease: a renew stuck in a busy store cannot keep an
    instance running past the lease that others may then claim.
    """

    def __init__(
        self,
        system: ActorSystem,
        name: str,
        cls: type[pykka.Actor],
        args: Any,
        lease: float,
        takeover_on_down: bool,
    ) -> None:
        self._system = system
        self._name = name
        self._cls = cls
        self._args = tuple(args)
        self._lease = lease
        self._takeover_on_down = takeover_on_down
        self._key = singleton_key(name)
        self._owner = f"{system.name}/{system.owner}"
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # guards the four below (keeper and watchdog threads)
        self._epoch: int | None = None
        self._ref: pykka.ActorRef[Any] | None = None
        self._watchdog: threading.Timer | None = None
        self._generation = 0  # bumped by every arm and stop: an older watchdog does nothing
        self._thread = threading.Thread(
            target=self._run, name=f"actorflow-singleton-{name}", daemon=True
        )

    def start(self) -> None:
        if self._system.cluster is not None:
            self._system.cluster.transport.subscribe(self._on_member)
        self._thread.start()

    def _on_member(self, event: MemberEvent) -> None:
        if event.status != "up":
            self._wake.set()

    def _run(self) -> None:
        store = actor_state_store(self._system)
        while not self._stopping.is_set():
            self._wake.clear()
            began = time.monotonic()
            with self._lock:
                epoch, ref = self._epoch, self._ref
            try:
                if epoch is None:
                    self._try_claim(store)
                else:
                    self._keep(store, epoch, ref)
            except Exception:
                log.exception("singleton %s: keeper step failed", self._name)
            # Every lease/3 from the step's start, however long it took: a renew taking
            # up to lease/3 still lands before the watchdog's 2/3 (not only up to lease/6).
            self._wake.wait(max(0.0, began + self._lease / 3 - time.monotonic()))

    def _try_claim(self, store: Any) -> None:
        started = time.monotonic()
        epoch = store.claim_actor(self._key, owner=self._owner, lease=self._lease)
        if epoch is None and self._takeover_on_down:
            epoch = self._takeover(store)
        if epoch is None:
            return
        try:
            ref = self._system._spawn_hooked(
                self._cls,
                self._args,
                {},
                singleton_path(self._name),
                key=self._key,
                epoch=epoch,
                on_exit=lambda _error: self._wake.set(),
            )
        except BaseException:
            store.release_actor(self._key, epoch=epoch)  # held, but nothing runs: let go
            raise
        with self._lock:
            self._ref, self._epoch = ref, epoch
        self._arm(started)
        log.info("singleton %s: started on %s at epoch %d", self._name, self._system.name, epoch)

    def _takeover(self, store: Any) -> int | None:
        """Claim at the holder's epoch if the failure detector declared its node gone."""
        lease = store.actor_lease(self._key)
        if lease is None or lease.owner is None:
            return None
        node = lease.owner.partition("/")[0]
        if node == self._system.name or self._system.members().get(node) not in ("down", "left"):
            return None
        epoch: int | None = store.claim_actor(
            self._key, owner=self._owner, lease=self._lease, if_epoch=lease.epoch
        )
        return epoch

    def _keep(self, store: Any, epoch: int, ref: pykka.ActorRef[Any] | None) -> None:
        started = time.monotonic()
        try:
            store.renew_actor(self._key, epoch=epoch, lease=self._lease)
        except StaleEpoch:
            log.warning("singleton %s: another member took it over; stopping it", self._name)
            self._stop_instance()
            return
        except PersistenceError as exc:
            log.warning("singleton %s: renew failed: %s", self._name, exc)
            return
        with self._lock:
            current = self._epoch == epoch
        if current:
            self._arm(started)
        if current and ref is not None and not ref.is_alive():
            log.warning("singleton %s: instance stopped; starting it again", self._name)
            self._stop_instance()  # then re-claimed (our own lease) at a new epoch
            self._try_claim(store)

    def _arm(self, renewed_at: float) -> None:
        """Stop the instance at 2/3 of the lease after ``renewed_at`` unless renewed again."""
        with self._lock:
            self._generation += 1
            generation, old = self._generation, self._watchdog
            delay = max(0.0, renewed_at + self._lease * 2 / 3 - time.monotonic())
            self._watchdog = threading.Timer(delay, self._expired, args=(generation,))
            self._watchdog.name = f"actorflow-singleton-watchdog-{self._name}"
            self._watchdog.daemon = True
            self._watchdog.start()
        if old is not None:
            old.cancel()

    def _expired(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
        log.warning("singleton %s: lease not renewed in time; stopping it", self._name)
        self._stop_instance()

    def _stop_instance(self) -> None:
        with self._lock:
            ref, self._ref, self._epoch = self._ref, None, None
            watchdog, self._watchdog = self._watchdog, None
            self._generation += 1
        if watchdog is not None:
            watchdog.cancel()
        if ref is not None:
            try:
                ref.stop(block=True, timeout=5.0)
            except pykka.Timeout:
                log.error("singleton %s did not stop within 5 s", self._name)

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(10.0)
        with self._lock:
            epoch = self._epoch
        self._stop_instance()
        if epoch is not None:
            try:
                actor_state_store(self._system).release_actor(self._key, epoch=epoch)
            except PersistenceError as exc:
                log.warning("singleton %s: lease not released: %s", self._name, exc)


class Singletons:
    """The singletons this member is a candidate for."""

    def __init__(self, system: ActorSystem) -> None:
        self._system = system
        self._keepers: dict[str, _Keeper] = {}
        self._lock = threading.Lock()

    def host(
        self,
        name: str,
        cls: type[pykka.Actor],
        args: Any,
        lease: float,
        takeover_on_down: bool = True,
    ) -> SingletonRef:
        if not isinstance(name, str) or not name or name.startswith("$"):
            raise ValueError(
                f"singleton(name) must be a non-empty str not starting with '$', got {name!r}"
            )
        if not (isinstance(cls, type) and issubclass(cls, pykka.Actor)):
            raise TypeError(f"singleton(actor_class) needs a pykka Actor class, got {cls!r}")
        if isinstance(lease, bool) or not isinstance(lease, int | float) or lease <= 0:
            raise ValueError(f"singleton lease must be a number of seconds > 0, got {lease!r}")
        if not isinstance(takeover_on_down, bool):
            raise TypeError(f"takeover_on_down must be a bool, got {takeover_on_down!r}")
        actor_state_store(self._system)  # fail now, not in the keeper, without one
        with self._lock:
            if name in self._keepers:
                raise ValueError(f"this member is already a candidate for singleton {name!r}")
            keeper = self._keepers[name] = _Keeper(
                self._system, name, cls, args, float(lease), takeover_on_down
            )
        keeper.start()
        return self.ref(name)

    def ref(self, name: str) -> SingletonRef:
        return SingletonRef(self._system, name)

    def close(self) -> None:
        with self._lock:
            keepers, self._keepers = list(self._keepers.values()), {}
        for keeper in keepers:
            keeper.close()
