"""Local messaging rows: tell throughput and ask round trip, ActorSystem vs raw pykka.

``ActorSystem.spawn`` returns a plain pykka ``ActorRef``, so these rows check
that the system adds nothing on the message path (today it should be ~1.0x;
the row is there to catch a future wrapper that does).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pykka

from bench._row import Config, Family, Row, Series, Target, interleaved
from runtime import ActorSystem

__all__ = ["FAMILY"]

_COUNT = "count"


class _Counter(pykka.ThreadingActor):
    """Counts tells; answers an ask with the count (or echoes the message)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if message is _COUNT:
            return self.count
        self.count += 1
        return message


def _tell_rate(ref: pykka.ActorRef[_Counter], messages: int) -> float:
    """Messages per second for ``messages`` tells, drained (an ask waits for the last)."""
    before = ref.ask(_COUNT)
    started = time.perf_counter()
    for index in range(messages):
        ref.tell(index)
    drained = ref.ask(_COUNT, timeout=60)
    elapsed = time.perf_counter() - started
    assert drained - before == messages
    return messages / elapsed


def _ask_p50_us(ref: pykka.ActorRef[_Counter], asks: int) -> float:
    """Median microseconds of ``asks`` sequential asks."""
    latencies = []
    for index in range(asks):
        started = time.perf_counter()
        ref.ask(index, timeout=10)
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    return latencies[len(latencies) // 2] * 1e6


def _both(
    config: Config,
    measure: Callable[[pykka.ActorRef[_Counter]], float],
) -> tuple[Series, Series]:
    """``measure`` on an actor from ``ActorSystem.spawn`` and on a raw ``start()``, interleaved."""
    with ActorSystem("bench-local") as system:
        spawned = system.spawn(_Counter)
        raw = _Counter.start()
        try:
            value, baseline = interleaved(
                config.repeats,
                [
                    ("ActorSystem.spawn", lambda: measure(spawned)),
                    ("raw pykka", lambda: measure(raw)),
                ],
            )
        finally:
            raw.stop()
    return value, baseline


def run(config: Config) -> list[Row]:
    messages = config.size(20_000, 500)
    asks = config.size(2_000, 100)
    tell, tell_raw = _both(config, lambda ref: _tell_rate(ref, messages))
    ask, ask_raw = _both(config, lambda ref: _ask_p50_us(ref, asks))
    return [
        Row(
            "local",
            f"tell throughput, one actor ({messages} tells)",
            "msg/s",
            tell,
            (Series("raw pykka ThreadingActor tell", tell_raw.samples),),
            Target("ratio", ">=", 0.9),
        ),
        Row(
            "local",
            f"ask round trip p50 ({asks} asks)",
            "us",
            ask,
            (Series("raw pykka ask", ask_raw.samples),),
            Target("ratio", "<=", 1.3),
        ),
    ]


FAMILY = Family("local", run)
