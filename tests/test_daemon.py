"""serve(): waiting for a stop signal with a high fd, and putting back the handlers it found."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from runtime import ActorSystem, serve

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def many_fds() -> Iterator[None]:
    """Hold open enough descriptors that the next one is above select()'s FD_SETSIZE (1024)."""
    held: list[int] = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            held.append(fd)
            if fd > 1100:
                break
    except OSError as exc:  # a low RLIMIT_NOFILE: nothing to show here
        for fd in held:
            os.close(fd)
        pytest.skip(f"cannot open 1100 descriptors: {exc}")
    yield
    for fd in held:
        os.close(fd)


def test_serve_on_the_main_thread_works_in_a_process_with_many_open_descriptors(
    many_fds: None,
) -> None:
    """A member with >1024 open fds (sockets, files) must still serve and stop cleanly."""
    assert threading.current_thread() is threading.main_thread()
    stop = threading.Event()
    # Set from another thread once serve() waits (a stop set before the wait would skip it).
    later = threading.Timer(0.5, stop.set)
    with ActorSystem("many-fds") as system:
        remaining = serve(system, stop=stop, drain_timeout=1.0, on_ready=lambda _s: later.start())
    later.join(5)
    assert remaining == 0


class _ShutdownFails:
    """Enough of an ActorSystem for serve(): leave works, shutdown raises."""

    def leave(self, drain_timeout: float) -> int:
        return 0

    def shutdown(self) -> None:
        raise RuntimeError("store close failed")


def test_serve_puts_back_the_signal_handlers_even_when_shutdown_raises() -> None:
    found = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    system: Any = _ShutdownFails()
    with pytest.raises(RuntimeError, match="store close failed"):
        serve(system, stop=stop, on_ready=lambda _s: stop.set())
    # Else a later SIGTERM goes to serve()'s handler, which only writes a closed pipe:
    # the process can no longer be stopped by SIGTERM.
    assert signal.getsignal(signal.SIGTERM) is found


def test_a_sigterm_while_serve_waits_drains_and_returns(many_fds: None) -> None:
    """The signal path through the wake-up pipe, also with a pipe fd above 1024."""
    found = signal.getsignal(signal.SIGTERM)
    later = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    with ActorSystem("sigterm") as system:
        remaining = serve(system, drain_timeout=1.0, on_ready=lambda _s: later.start())
    later.join(5)
    assert remaining == 0
    assert signal.getsignal(signal.SIGTERM) is found


def test_with_exit_after_stop_signals_stay_ignored_once_serve_returns() -> None:
    """What ``actorflow node`` uses: no window in which a repeated SIGTERM kills it."""
    found = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    stop = threading.Event()
    try:
        with ActorSystem("exit-after") as system:
            serve(system, stop=stop, on_ready=lambda _s: stop.set(), exit_after=True)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        for signum, handler in found.items():
            signal.signal(signum, handler)
