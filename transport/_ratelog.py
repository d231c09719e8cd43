"""Log lines about single messages, rate-limited: one per reason per window, with a count.

A peer that sends 24,000 bad frames (or tells to an unknown actor) in a burst
must not write 24,000 lines: the first of each reason in a window is a
WARNING; the rest are DEBUG lines and are counted in the next WARNING.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["RateLimitedLog"]


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
        self._last: dict[str, float] = {}  # reason -> when its last WARNING was written
        self._suppressed: dict[str, int] = {}  # reason -> DEBUG-only lines since then

    def warning(self, reason: str, message: str, *args: object) -> None:
        """``message % args`` as a WARNING at most once per ``every`` s for ``reason``."""
        self._write(logging.WARNING, reason, message, args)

    def error(self, reason: str, message: str, *args: object) -> None:
        """As ``warning``, at ERROR."""
        self._write(logging.ERROR, reason, message, args)

    def _write(self, level: int, reason: str, message: str, args: tuple[object, ...]) -> None:
        now = self._clock()
        with self._lock:
            last = self._last.get(reason)
            loud = last is None or now - last >= self._every
            if loud:
                self._last[reason] = now
                suppressed = self._suppressed.pop(reason, 0)
            else:
                self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
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
