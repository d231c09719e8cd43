"""Embedding a cluster member in a daemon: ``serve(system)`` runs until SIGTERM/SIGINT.

On the signal it leaves the cluster gracefully — in-flight steps get up to
``drain_timeout`` seconds to finish, new ones are refused so coordinators
re-place them, peers are told — then shuts the system down and returns.
SIGHUP re-reads the keys directory (the CURVE allowlist: a new node's key is
accepted without a restart, a removed one refused on its next connection).
SIGUSR1 writes every thread's stack to stderr (named threads: ``actorflow-io-*``,
``actorflow-dispatch-*``, pykka actors...), the first thing to look at when a
member seems stuck; a thread of ours writes it, holding the GIL
(``_stackdump``), so it is safe on a busy node. faulthandler is enabled for
fatal errors only.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import selectors
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType

from runtime._stackdump import StackDumper
from runtime._system import ActorSystem

__all__ = ["node_command", "serve"]

log = logging.getLogger(__name__)


def serve(
    system: ActorSystem,
    *,
    drain_timeout: float = 10.0,
    stop: threading.Event | None = None,
    on_ready: Callable[[ActorSystem], None] | None = None,
    exit_after: bool = False,
) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set), then drain, leave and shut down.

    Signal handlers are installed only when called from the main thread
    (elsewhere, set ``stop``); repeated signals during the drain are ignored, and
    the handlers found on entry are put back on return — or, with
    ``exit_after=True`` (the process exits next, as ``actorflow node`` does),
    stop signals are ignored from then on, so a repeated SIGTERM cannot kill
    the process on its way out. Returns the number of steps still running when
    the drain timed out (0 after a clean drain).
    """
    stop = stop or threading.Event()
    previous: dict[signal.Signals, object] = {}
    wakeup: tuple[int, int] | None = None
    received: list[int] = []
    dumper: StackDumper | None = None
    hangups: list[int] = []  # SIGHUPs not yet acted on
    if threading.current_thread() is threading.main_thread():
        wakeup = os.pipe()
        os.set_blocking(wakeup[1], False)
        write_end = wakeup[1]

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # Runs on the main thread between bytecodes, possibly inside a lock the
            # main thread holds (Event.set/wait) or inside itself on a second
            # signal: it must take no lock, so it only records and wakes the pipe.
            if not received:  # the first one decides; repeats change nothing
                received.append(signum)
            with contextlib.suppress(OSError):  # pipe full: a wake-up is pending
                os.write(write_end, b"\0")

        def on_hangup(signum: int, frame: FrameType | None) -> None:
            hangups.append(signum)  # same rule as on_signal: no lock, just wake the loop
            with contextlib.suppress(OSError):
                os.write(write_end, b"\0")

        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hangup)
        if not faulthandler.is_enabled():
            faulthandler.enable()  # fatal errors only: SIGUSR1 is the dumper's
        dumper = StackDumper()
        dumper.install()
    try:
        if on_ready is not None:
            on_ready(system)
        _wait_for_stop(stop, received, wakeup[0] if wakeup else None, hangups, system.reload_keys)
        if received:
            log.info("signal %s: draining and leaving", signal.Signals(received[0]).name)
        remaining = system.leave(drain_timeout)
        if remaining:
            log.warning(
                "%d step(s) still running after %.1fs; handed back", remaining, drain_timeout
            )
        return remaining
    finally:
        try:
            system.shutdown()
        finally:  # even if shutdown raised: else SIGTERM would only write a closed pipe
            for signum, handler in previous.items():
                signal.signal(signum, signal.SIG_IGN if exit_after else handler)  # type: ignore[arg-type]
            if wakeup is not None:
                os.close(wakeup[0])
                os.close(wakeup[1])
            if dumper is not None:
                dumper.uninstall()


def _wait_for_stop(
    stop: threading.Event,
    received: list[int],
    wakeup_fd: int | None,
    hangups: list[int],
    on_hangup: Callable[[], object],
) -> None:
    """Block until a stop signal was received or ``stop`` is set (by another thread);
    run ``on_hangup`` (here, on this thread) for each burst of SIGHUPs meanwhile.

    With a wake-up pipe a signal ends the wait at once; ``stop`` is looked at
    every ``_STOP_POLL`` seconds, without taking its lock.
    """
    if wakeup_fd is None:
        stop.wait()
        return
    # A selector, not select.select(): that refuses descriptors >= FD_SETSIZE (1024),
    # which a member with many sockets or files open gets for its pipe.
    with selectors.DefaultSelector() as selector:
        selector.register(wakeup_fd, selectors.EVENT_READ)
        while not received and not stop.is_set():
            if selector.select(_STOP_POLL):
                with contextlib.suppress(OSError):
                    os.read(wakeup_fd, 512)  # consumed: a later signal wakes us again
            if hangups and not received:
                hangups.clear()
                log.info("SIGHUP: reloading the keys directory")
                try:
                    on_hangup()
                except Exception:
                    log.exception("reloading the keys directory failed")


_STOP_POLL = 0.2


def node_command(
    name: str,
    *,
    join: Sequence[str] = (),
    join_timeout: float | None = None,
    listen: str = "tcp://127.0.0.1:0",
    apps: Sequence[str] = (),
    keys: str | os.PathLike[str] | None = None,
    plaintext: bool = False,
    drain_timeout: float = 10.0,
    metrics: str | None = None,
    db: str | os.PathLike[str] | None = None,
    adopt: bool = False,
    lease: float | None = None,
    adopt_interval: float | None = None,
) -> list[str]:
    """The argv that runs ``actorflow node`` with this interpreter (for ``subprocess``).

    For programs that start members themselves (demos, tests, process
    supervisors): the same options as the CLI, checked the same way there.
    """
    command = [sys.executable, "-m", "runtime._cli", "node", "--name", name, "--listen", listen]
    for seed in join:
        command += ["--join", seed]
    if join_timeout is not None:
        command += ["--join-timeout", str(join_timeout)]
    for app in apps:
        command += ["--app", app]
    if keys is not None:
        command += ["--keys", os.fspath(keys)]
    if plaintext:
        command.append("--plaintext")
    if metrics is not None:
        command += ["--metrics", metrics]
    if db is not None:
        command += ["--db", os.fspath(db)]
    if adopt:
        command.append("--adopt")
    if lease is not None:
        command += ["--lease", str(lease)]
    if adopt_interval is not None:
        command += ["--adopt-interval", str(adopt_interval)]
    return [*command, "--drain-timeout", str(drain_timeout)]
