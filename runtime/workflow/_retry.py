"""Retry policies and backoffs for steps.

``RetryPolicy(max_attempts, backoff, retry_on)``: ``max_attempts`` counts every
attempt including the first; ``retry_on`` is a tuple of exception types or a
predicate, and by default retries ``TemporaryError`` only. The run coordinator
waits out a backoff with a clock timer (a scheduled message), never a sleep in
a mailbox, so other steps progress meanwhile.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from actors import TemporaryError

__all__ = ["Backoff", "Custom", "Exponential", "Fixed", "RetryPolicy"]


class Backoff(Protocol):
    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ...


def _check_non_negative(name: str, value: float) -> None:
    if not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


@dataclass(frozen=True)
class Fixed:
    """The same delay after every failed attempt."""

    seconds: float = 0.0

    def __post_init__(self) -> None:
        _check_non_negative("Fixed(seconds)", self.seconds)

    def delay(self, attempt: int) -> float:
        return float(self.seconds)


@dataclass(frozen=True)
class Exponential:
    """``initial * multiplier**(attempt-1)`` capped at ``max``, minus up to ``jitter`` of it.

    ``jitter`` is a fraction in [0, 1]: 0.2 draws the delay uniformly from
    [0.8 d, d]. ``rng`` makes the draw reproducible in tests.
    """

    initial: float = 1.0
    multiplier: float = 2.0
    max: float = 30.0
    jitter: float = 0.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_non_negative("Exponential(initial)", self.initial)
        _check_non_negative("Exponential(max)", self.max)
        if not isinstance(self.multiplier, int | float) or self.multiplier < 1:
            raise ValueError(f"Exponential(multiplier) must be >= 1, got {self.multiplier!r}")
        if not isinstance(self.jitter, int | float) or not 0 <= self.jitter <= 1:
            raise ValueError(f"Exponential(jitter) must be within [0, 1], got {self.jitter!r}")

    def delay(self, attempt: int) -> float:
        base = min(self.max, self.initial * self.multiplier ** max(0, attempt - 1))
        if self.jitter:
            base -= base * self.jitter * self.rng.random()
        return float(base)


@dataclass(frozen=True)
class Custom:
    """Any function of the failed attempt number to a delay in seconds."""

    fn: Callable[[int], float]

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"Custom(fn) must be callable, got {self.fn!r}")

    def delay(self, attempt: int) -> float:
        value = self.fn(attempt)
        _check_non_negative(f"Custom backoff result for attempt {attempt}", value)
        return float(value)


RetryOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


def _public_name(kind: type[BaseException]) -> str:
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


@dataclass(frozen=True)
class RetryPolicy:
    """How often and when to run a failed step again.

    A failure from a remote node is a ``RemoteError``; it matches ``retry_on``
    types by the names of its original classes (a remote ``TemporaryError``
    is retried by default). A predicate gets the ``RemoteError`` itself.
    """

    max_attempts: int = 3
    backoff: Backoff = field(default_factory=Fixed)
    retry_on: RetryOn = (TemporaryError,)

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        if not callable(getattr(self.backoff, "delay", None)):
            raise TypeError(f"backoff must have a delay(attempt) method, got {self.backoff!r}")
        if isinstance(self.retry_on, tuple):
            bad = [
                t
                for t in self.retry_on
                if not (isinstance(t, type) and issubclass(t, BaseException))
            ]
            if bad:
                raise TypeError(f"retry_on must hold exception types, got {bad!r}")
        elif not callable(self.retry_on):
            raise TypeError(
                f"retry_on must be exception types or a predicate, got {self.retry_on!r}"
            )

    def should_retry(self, error: BaseException, attempt: int) -> bool:
        """True when failed attempt ``attempt`` may be followed by another."""
        if attempt >= self.max_attempts:
            return False
        if isinstance(self.retry_on, tuple):
            if isinstance(error, self.retry_on):
                return True
            # A failure on another node arrives as RemoteError carrying the names of
            # its original classes: match those, so TemporaryError stays retryable.
            remote_names = set(getattr(error, "mro_names", ()) or ())
            return any(_public_name(kind) in remote_names for kind in self.retry_on)
        return bool(self.retry_on(error))

    def delay(self, attempt: int) -> float:
        return self.backoff.delay(attempt)
