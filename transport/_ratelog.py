"""Log lines about single messages, rate-limited: one per reason (and peer) per window, counted.

A peer that sends 24,000 bad frames (or tells to an unknown actor) in a burst
must not write 24,000 lines: the first of each reason in a window is a
WARNING; the rest are DEBUG lines and are counted in the next WARNING. With
``peer``, each peer has its own window per reason, so one noisy peer's lines
never hide another peer's first line, and the counts say who was noisy.

The suppressed lines are also counted for good (``suppressed``): a node's
``TransportStats.log_suppressed`` and ``actorflow status`` show them, keyed
``reason`` or ``reason@peer``. The keys are bounded (``_MAX_KEYS``): past that
many, new peers share the key ``reason@*``, so claimed names cannot grow them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimitedLog"]

_MAX_KEYS = 1024  # distinct reason@peer windows kept; more peers fold into reason@*


class RateLimitedLog:
    """Thread-safe; one instance per component (its reasons are its own)."""

    def __init__(
        self,
        logger: logging.Logger,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # key -> when its last WARNING was written
        self._pending: dict[str, int] = {}  # key -> DEBUG-only lines since then
        self._total: dict[str, int] = {}  # key -> DEBUG-only lines ever (for stats)

    def warning(self, reason: str, message: str, *args: object, peer: str | None = None) -> None:
        """``message % args`` as a WARNING at most once per ``every`` s for ``reason``
        (and ``peer``, when given)."""
        self._write(logging.WARNING, reason, peer, message, args)

    def error(self, reason: str, message: str, *args: object, peer: str | None = None) -> None:
        """As ``warning``, at ERROR."""
        self._write(logging.ERROR, reason, peer, message, args)

    def suppressed(self) -> dict[str, int]:
        """Lines written at DEBUG instead, since this log was made, by key
        (``reason`` or ``reason@peer``)."""
        with self._lock:
            return dict(self._total)

    def _write(
        self, level: int, reason: str, peer: str | None, message: str, args: tuple[object, ...]
    ) -> None:
        now = self._clock()
        key = reason if peer is None else f"{reason}@{peer}"
        with self._lock:
            last = self._last.get(key)
            if last is None and len(self._last) >= _MAX_KEYS:
                key = f"{reason}@*"
                last = self._last.get(key)
            loud = last is None or now - last >= self._every
            if loud:
                self._last[key] = now
                suppressed = self._pending.pop(key, 0)
            else:
                self._pending[key] = self._pending.get(key, 0) + 1
                self._total[key] = self._total.get(key, 0) + 1
        if not loud:
            self._logger.debug(message, *args)
        elif suppressed:
            self._logger.log(
                level,
                message + " (and %d more like it since the last such line)",
                *args,
                suppressed,
            )
        else:
            self._logger.log(level, message, *args)
