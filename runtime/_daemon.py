"""Embedding a cluster member in a daemon: ``serve(system)`` runs until SIGTERM/SIGINT.

On the signal it leaves the cluster gracefully — in-flight steps get up to
``drain_timeout`` seconds to finish, new ones are refused so coordinators
re-place them, peers are told — then shuts the system down and returns.
SIGUSR1 writes every thread's stack to stderr (named threads: ``actorflow-io-*``,
``actorflow-dispatch-*``, pykka actors...), the first thing to look at when a
member seems stuck.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from runtime._system import ActorSystem

__all__ = ["serve"]

log = logging.getLogger(__name__)


def serve(
    system: ActorSystem,
    *,
    drain_timeout: float = 10.0,
    stop: threading.Event | None = None,
    on_ready: Callable[[ActorSystem], None] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set), then drain, leave and shut down.

    Signal handlers are installed only when called from the main thread
    (elsewhere, set ``stop``). Returns the number of steps still running when
    the drain timed out (0 after a clean drain).
    """
    stop = stop or threading.Event()
    previous: dict[signal.Signals, object] = {}
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("signal %s: draining and leaving", signal.Signals(signum).name)
            stop.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
        if not faulthandler.is_enabled():
            faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        if on_ready is not None:
            on_ready(system)
        while not stop.wait(1.0):
            pass
        remaining = system.leave(drain_timeout)
        if remaining:
            log.warning(
                "%d step(s) still running after %.1fs; handed back", remaining, drain_timeout
            )
        return remaining
    finally:
        system.shutdown()
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
